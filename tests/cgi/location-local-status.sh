#!/bin/sh
# A local path with an explicit status other than 200: sent as is.
printf 'Status: 303 See Other\nLocation: /target.txt\nContent-Type: text/plain\n\nsee other\n'
