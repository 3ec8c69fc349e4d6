#!/bin/sh
# Folded (obs-fold) header lines, passed through untouched.
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Folded: first part\r\n  second part\r\n\tthird part\r\nX-After: 1\r\n\r\nfolded nph\n'
