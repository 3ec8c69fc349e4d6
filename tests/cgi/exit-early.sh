#!/bin/sh
# Fails before writing anything.
exit 3
