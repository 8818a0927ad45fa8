#!/usr/bin/env python
"""The example project's manage.py (`python manage.py wasmq_push`, `python manage.py test pages`)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pagesite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
