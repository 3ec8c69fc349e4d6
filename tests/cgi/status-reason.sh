#!/bin/sh
printf 'Status: 404 Not Here\nContent-Type: text/plain\n\nno such thing\n'
