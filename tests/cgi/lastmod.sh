#!/bin/sh
# Validators from the script: the conditional request is httpd's business.
printf 'Content-Type: text/plain\nLast-Modified: Sat, 01 Jan 2000 00:00:00 GMT\nETag: "equiv-1"\n\nvalidated body\n'
