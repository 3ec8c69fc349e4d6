#!/bin/sh
# The script says 304 itself (and writes a body that must not be sent).
printf 'Status: 304 Not Modified\nETag: "equiv-304"\n\nno body for a 304\n'
