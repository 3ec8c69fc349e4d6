#!/bin/sh
# A status code httpd has no reason phrase for, with one of our own.
printf 'Status: 299 Quite Unusual\nContent-Type: text/plain\n\ncustom status\n'
