"""KServe peer for bench/serving/run.py: a fitted scikit-learn model (joblib) behind KServe's Python model server.

    .bench/kserve/bin/python bench/serving/kserve_model.py --model_path model.joblib --model_name iris \
        --http_port 18300 --enable_grpc false --enable_latency_logging false

The documented custom-model way (a kserve.Model subclass, ModelServer().start), V2 REST; predict goes through
KServe's own InferRequest/InferResponse helpers, as its sklearn server does. Changed from KServe's defaults: no log
line per request (latency line: the flag above; timing middleware, uvicorn access log and FastAPI's ORJSONResponse
deprecation warning: here), and the HTTP server binds 127.0.0.1 (KServe hard-codes 0.0.0.0).
"""

from __future__ import annotations

import argparse
import logging
import warnings

import joblib
from fastapi.exceptions import FastAPIDeprecationWarning
from kserve import Model, ModelServer, model_server
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(Model):
    def __init__(self, name: str, path: str):
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        self.model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        return get_predict_response(payload, self.model.predict(get_predict_input(payload)), self.name)


class LoopbackRESTServer(model_server.RESTServer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.host = "127.0.0.1"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True)
    args, _ = parser.parse_known_args()
    model_server.RESTServer = LoopbackRESTServer
    server = ModelServer()  # takes the other KServe flags from the command line; configures logging
    access = logging.getLogger("uvicorn.access")  # as uvicorn's --no-access-log does
    access.handlers, access.propagate = [], False
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    server.start([SKLearnModel(args.model_name, args.model_path)])
