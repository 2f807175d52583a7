-- wrk script: POST one V2 infer request of ROWS rows of iris-shaped features.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("V2_BODY") or '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[[5.1,3.5,1.4,0.2]]}]}'
