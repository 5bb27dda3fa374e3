"""gunicorn's threaded worker, made to let go of the port at once when its master dies."""

from gunicorn.workers.gthread import ThreadWorker as GunicornThreadWorker

ORPHAN_GRACE = 2  # seconds an orphaned worker gives the requests it is answering


class ThreadWorker(GunicornThreadWorker):
    """A gthread worker whose master was killed (``kill -9``) closes its listening sockets as
    soon as it notices (within a second), so a new ``authsvc serve`` can take the port, then
    finishes what it is answering for at most ``ORPHAN_GRACE`` seconds and exits."""

    def is_parent_alive(self) -> bool:
        if super().is_parent_alive():
            return True
        self.set_accept_enabled(False)
        for listener in self.sockets:
            listener.close()
        self.cfg.set("graceful_timeout", min(self.cfg.graceful_timeout, ORPHAN_GRACE))
        return False
