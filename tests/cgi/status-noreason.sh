#!/bin/sh
printf 'Status: 404\nContent-Type: text/plain\n\nno such thing\n'
