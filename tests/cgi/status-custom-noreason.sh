#!/bin/sh
printf 'Status: 299\nContent-Type: text/plain\n\ncustom status without reason\n'
