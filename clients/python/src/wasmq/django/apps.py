from django.apps import AppConfig


class WasmqConfig(AppConfig):
    """Makes `manage.py wasmq_push` available."""

    name = "wasmq.django"
    label = "wasmq"
    verbose_name = "wasmq"
