from django.db import models

from .tasks import notify_subscribers, reindex_page


class Page(models.Model):
    """A page; saving it enqueues its reindex, and a new page also notifies subscribers."""

    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    subscribers = models.TextField(blank=True, help_text="email addresses, one a line")

    def save(self, *args, **kwargs):
        new = self.pk is None
        super().save(*args, **kwargs)
        # The task results, for whoever wants to follow them (not stored).
        self.task_results = [reindex_page.enqueue(self.pk, self.title, self.body)]
        recipients = [s.strip() for s in self.subscribers.splitlines() if s.strip()]
        if new and recipients:
            self.task_results.append(notify_subscribers.enqueue(self.pk, self.title, recipients))
