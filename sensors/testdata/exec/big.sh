#!/bin/sh
# Prints 110 000 bytes, more than the adapter accepts.
i=0
while [ "$i" -lt 10000 ]; do
	echo 1234567890
	i=$((i + 1))
done
