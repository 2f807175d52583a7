"""The model server (`mlops-operator serve`): runtime (model + batching) → data plane (V2 codec) → HTTP."""
