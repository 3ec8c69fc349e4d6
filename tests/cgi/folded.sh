#!/bin/sh
# A folded (continued) CGI header line.
printf 'Content-Type: text/plain\nX-Folded: first part\n  second part\nX-After: 1\n\nfolded\n'
