#!/bin/sh
# An ISINDEX-style query (no '=') becomes command-line arguments under CGI.
printf 'Content-Type: text/plain\n\nargc=%s\n' "$#"
for a in "$@"; do printf 'arg=[%s]\n' "$a"; done
