#!/bin/sh
printf 'Status: nine hundred\nContent-Type: text/plain\n\nbad status\n'
