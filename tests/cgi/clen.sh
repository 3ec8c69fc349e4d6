#!/bin/sh
# The script's own Content-Length.
printf 'Content-Type: text/plain\nContent-Length: 13\n\nthirteen byte'
