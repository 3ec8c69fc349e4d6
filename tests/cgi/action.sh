#!/bin/sh
# The handler script behind an Action: gets the document as PATH_INFO.
printf 'Content-Type: text/plain\n\nhandled: PATH_INFO=[%s] PATH_TRANSLATED=[%s] REDIRECT_HANDLER=[%s] REDIRECT_URL=[%s] QUERY_STRING=[%s]\n' \
  "$PATH_INFO" "$PATH_TRANSLATED" "$REDIRECT_HANDLER" "$REDIRECT_URL" "$QUERY_STRING"
[ -r "$PATH_TRANSLATED" ] && cat "$PATH_TRANSLATED"
exit 0
