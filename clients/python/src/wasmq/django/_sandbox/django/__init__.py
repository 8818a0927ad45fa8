"""Stand-in for Django inside a wasmq component, where only `django.tasks` exists.

A task runs without Django: no settings, no ORM, no apps. `manage.py wasmq_push` puts
this package first on the component's path, so `from django.tasks import task` works.
"""
