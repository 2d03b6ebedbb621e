"""The demo: generated data, two trained rankers, rule tiers, a model server and a local stack.

    data         deterministic users, items and clicks from a latent model; popularity table
    catalog      what the models know at serving time (users, items) and their feature rows
    train        trains the primary ranker and the light fallback into a model directory
    models       in-process model objects for the gateway's ``python`` backend
    rules        rule tiers: plain functions of the input, no ML
    chat         a tiny deterministic "generative" model and ChatCompletion bodies
    faults       fault injection for the model server (error, malformed, close, hang, slow)
    modelserver  a standalone Open Inference Protocol v2 + OpenAI-compatible server process,
                 composed of v2server (field models: v2models), tensorserver (the image
                 scorer: tensormodel) and chatserver (chat, embeddings), with responses
    images       the tensor route: an image classifier for MLServer, a lighter one in process
    procs        start, wait for and stop child processes (reused by integration tests)
    stack        ``run_demo``: trains, writes the config, runs the servers and the gateway

Nothing is imported here, so ``failwell.demo.rules`` does not pay for scikit-learn.
"""
