#!/bin/sh
# A local path with no Status: an internal redirect.
printf 'Location: /target.txt\n\n'
