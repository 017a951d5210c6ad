-- GET the URL given to wrk, over and over.
done = dofile("/loadgen/report.lua")
