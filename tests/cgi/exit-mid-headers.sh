#!/bin/sh
# Dies halfway through a header line.
printf 'Content-Type: text/plain\nX-Half: '
exit 1
