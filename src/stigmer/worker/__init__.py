"""The durable agent runner: a Temporal worker running agents (workflows) and their I/O (activities).

Import the pieces from their modules (``stigmer.worker.main.run_worker``, ``stigmer.worker.client.connect``,
``stigmer.worker.params.ExecutionInput``...): this package imports nothing heavy on its own.
"""
