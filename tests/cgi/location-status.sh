#!/bin/sh
# An absolute URL with an explicit status.
printf 'Status: 301 Moved Permanently\nLocation: http://elsewhere.example/forever\n\n'
