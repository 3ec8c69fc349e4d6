#!/bin/sh
# Included into a page by mod_include.
printf 'Content-Type: text/html\nX-Ignored-In-Ssi: 1\n\n<b>included: QUERY_STRING=%s METHOD=%s</b>' "$QUERY_STRING" "$REQUEST_METHOD"
