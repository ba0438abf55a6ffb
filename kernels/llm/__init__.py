"""LLM and attention workloads: whole-model prefill and decode timing on any engine.

See docs/llm.md."""

from .model import (SHIPPED, Gemm, ModelSpec, VectorOp, layer_ops, load_config, query_blocks,
                    resolve_model)
from .run import FIELDS, LlmRun, Placement, VectorUnit, holds_dense_b, run_graph, run_llm

__all__ = ["FIELDS", "SHIPPED", "Gemm", "LlmRun", "ModelSpec", "Placement", "VectorOp",
           "VectorUnit", "holds_dense_b", "layer_ops", "load_config", "query_blocks",
           "resolve_model", "run_graph", "run_llm"]
