"""anymodal.serve — serving a bundle on NVIDIA Triton Inference Server (the `serve` extra).

    family_io      the ONE place that knows each family's Triton tensors and maps a Prediction
    batching       grouping the requests of a Triton batch into Runtime.predict calls
    triton_model   the Python-backend model (runtime flavor) and the BLS router (graphs flavor)
    server         locating and running `tritonserver` (start, wait ready, stop, no orphans)
    cli            rt-serve
"""
