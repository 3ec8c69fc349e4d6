#!/bin/sh
# Answers without reading the request body. The pause lets the gateway hand
# over what fits in the pipe before the script is gone (mod_cgi and fcgiwrap
# both write the body first and read the answer after).
sleep 0.2
printf 'Content-Type: text/plain\n\nignored a body of %s bytes\n' "${CONTENT_LENGTH:-<unset>}"
