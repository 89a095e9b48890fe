"""The records a FunkLoad test case logs: one per response, XML-RPC call and test.

`FunkLoadTestCase` counts and logs every response it gets (pages, redirects,
auto-loaded resources, XML-RPC calls, errors with code -1) and one
``<testResult>`` per test, with FunkLoad's fields, to its sink: the bench's
recorder (`marteau.engine.recorder`) or ``marteau test``'s XML lines.  These
methods are part of the test case (`ResultLog` is one of its bases), apart
because the record fields are one job: what goes in a result file.
"""

from __future__ import annotations

import traceback
from typing import Any

from marteau.funkload.response import HTTPResponse


class ResultLog:
    """`FunkLoadTestCase`'s record methods (the test case holds the fields they read)."""

    _sink: Any  # the test case's `ResultSink`
    # The fields the test case sets (its __init__ and its counters).
    cycle: int
    cvus: int
    thread_id: int
    suite_name: str
    test_name: str
    steps: int
    page_responses: int
    total_responses: int
    total_time: float
    total_pages: int
    total_xmlrpc: int
    total_redirects: int
    total_images: int
    total_links: int
    step_success: bool
    test_status: str
    _test_traceback: str | None

    def _log_response(
        self,
        response: HTTPResponse,
        rtype: str,
        description: str | None,
        t_start: float,
        t_stop: float,
        log_body: bool = False,
    ) -> None:
        self.total_responses += 1
        self.page_responses += 1
        result = "Successful" if self.step_success else "Failure"
        if log_body:
            self._sink.response(
                cycle=self.cycle,
                cvus=self.cvus,
                thread=self.thread_id,
                suite=self.suite_name,
                name=self.test_name,
                step=self.steps,
                number=self.page_responses,
                type=rtype,
                result=result,
                url=response.url,
                code=response.code,
                description=description or "",
                time=t_start,
                duration=t_stop - t_start,
                headers=response.headers.items(),
                body=response.raw_body,
            )
        else:  # every request: positional (`ResultSink`'s order), a third of keywords' cost
            self._sink.response(
                self.cycle,
                self.cvus,
                self.thread_id,
                self.suite_name,
                self.test_name,
                self.steps,
                self.page_responses,
                rtype,
                result,
                response.url,
                response.code,
                description or "",
                t_start,
                t_stop - t_start,
            )

    def _log_response_error(
        self,
        url: str,
        rtype: str,
        description: str | None,
        t_start: float,
        t_stop: float,
    ) -> None:
        self.total_responses += 1
        self.page_responses += 1
        self._sink.response(
            cycle=self.cycle,
            cvus=self.cvus,
            thread=self.thread_id,
            suite=self.suite_name,
            name=self.test_name,
            step=self.steps,
            number=self.page_responses,
            type=rtype,
            result="Error",
            url=url,
            code=-1,
            description=description or "",
            time=t_start,
            duration=t_stop - t_start,
            traceback=traceback.format_exc(),
        )

    def _log_xmlrpc_response(
        self,
        url: str,
        method: str,
        description: str | None,
        t_start: float,
        t_stop: float,
        code: int,
    ) -> None:
        self.total_responses += 1
        self.page_responses += 1
        result = "Error" if code == -1 else ("Successful" if self.step_success else "Failure")
        self._sink.response(
            cycle=self.cycle,
            cvus=self.cvus,
            thread=self.thread_id,
            suite=self.suite_name,
            name=self.test_name,
            step=self.steps,
            number=self.page_responses,
            type="xmlrpc",
            result=result,
            url=f"{url}#{method}",
            code=code,
            description=description or "",
            time=t_start,
            duration=t_stop - t_start,
            traceback=traceback.format_exc() if code == -1 else None,
        )

    def _log_result(self, t_start: float, t_stop: float) -> None:
        """The `<testResult>` record."""
        status = self.test_status
        self._sink.test_result(  # every test: positional, in `ResultSink`'s order
            self.cycle,
            self.cvus,
            self.thread_id,
            self.suite_name,
            self.test_name,
            t_start,
            status,
            self.steps,
            t_stop - t_start,
            self.total_time,
            self.total_responses,
            self.total_pages,
            self.total_xmlrpc,
            self.total_redirects,
            self.total_images,
            self.total_links,
            (self._test_traceback or "") if status != "Successful" else None,
        )
