#!/bin/sh
# Outlives any sane timeout, through a child that holds standard output.
sleep 30
echo 1
