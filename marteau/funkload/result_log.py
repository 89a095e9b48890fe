"""What one FunkLoad test did: its counters, and the records of its requests and of itself.

`FunkLoadTestCase` counts and logs every response it gets (pages, redirects,
auto-loaded resources, XML-RPC calls, errors with code -1) and one
``<testResult>`` per test, with FunkLoad's fields, to its sink: the bench's
recorder (`marteau.engine.recorder`) or ``marteau test``'s XML lines.

This is the per-request path of every test, so it is compiled with the
engine (`marteau.native`): the test case keeps a `ResultLog` and shows its
counters as its own attributes (``self.steps``, ``self.total_time``...), and
`ResultLog.fetch` does a page request's timing, counting and record in one
native call. What needs the test case itself (debug lines, dumps, its
``failureException``) stays in the test case.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from marteau.funkload.browser import Browser
from marteau.funkload.response import HTTPResponse

# The request types after which the browser sends a Referer (webunit).
_REFERER_TYPES = frozenset(("get", "post", "put", "delete"))


class FailedResponse(Exception):
    """A response whose code is not an ok code, already counted and logged:
    the test case raises its own ``failureException`` from it."""

    def __init__(self, response: HTTPResponse) -> None:
        super().__init__(str(response))
        self.response = response


class ResultLog:
    """One test case's counters and records (FunkLoad's field names)."""

    steps: int
    page_responses: int
    total_responses: int
    total_time: float
    total_pages: int
    total_images: int
    total_links: int
    total_redirects: int
    total_xmlrpc: int
    step_success: bool
    test_status: str

    def __init__(
        self,
        open_sink: Callable[[], Any],
        cycle: int,
        cvus: int,
        thread_id: int,
        suite_name: str,
        test_name: str,
    ) -> None:
        self.open_sink = open_sink  # the sink, opened on the first record (a result file)
        self.sink: Any = None
        self.cycle = cycle
        self.cvus = cvus
        self.thread_id = thread_id
        self.suite_name = suite_name
        self.test_name = test_name
        self.last_request: tuple[str, str, int | None] | None = None
        self.last_duration = 0.0  # of the last `fetch`, for the test's debug line
        self.reset()

    def get_sink(self) -> Any:
        sink = self.sink
        if sink is None:
            sink = self.sink = self.open_sink()
        return sink

    def reset(self) -> None:
        """The counters of a new test (``clearContext``)."""
        self.steps = 0
        self.page_responses = 0
        self.total_responses = 0
        self.total_time = 0.0
        self.total_pages = 0
        self.total_images = 0
        self.total_links = 0
        self.total_redirects = 0
        self.total_xmlrpc = 0
        self.step_success = True
        self.test_status = "Successful"

    def begin_page(self) -> int:
        """A new step (a page or an XML-RPC call): its number."""
        self.steps += 1
        self.page_responses = 0
        return self.steps

    def fetch(
        self,
        browser: Browser,
        rtype: str,
        url: str,
        body: bytes | None,
        content_type: str | None,
        ok_codes: Any,
        description: str | None,
        redirect: bool,
    ) -> HTTPResponse:
        """One request of a page, timed, counted and logged.

        A response whose code is not in ``ok_codes`` raises `FailedResponse`;
        an exception of the request is logged as an Error record (code -1)
        and raised again.
        """
        verb = rtype.upper()
        t_start = time.time()
        try:
            response = browser.fetch(verb, url, body, content_type)
        except Exception:
            t_stop = time.time()
            self.last_duration = t_stop - t_start
            self.last_request = (verb, url, None)
            self.response_error(url, rtype, description, t_start, t_stop)
            raise
        t_stop = time.time()
        self.last_duration = duration = t_stop - t_start
        self.total_time += duration
        self.last_request = (verb, url, response.code)
        if response.code not in ok_codes:
            self.step_success = False
            self.test_status = "Failure"
            self.response(response, rtype, description, t_start, t_stop, True)
            raise FailedResponse(response)
        if redirect:
            self.total_redirects += 1
        else:
            self.total_pages += 1
        self.response(response, rtype, description, t_start, t_stop, False)
        if rtype in _REFERER_TYPES:
            browser.set_header("Referer", url)
        return response

    def response(
        self,
        response: HTTPResponse,
        rtype: str,
        description: str | None,
        t_start: float,
        t_stop: float,
        log_body: bool,
    ) -> None:
        self.total_responses += 1
        self.page_responses += 1
        result = "Successful" if self.step_success else "Failure"
        sink = self.get_sink()
        if log_body:
            sink.response(
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
            sink.response(
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

    def response_error(
        self,
        url: str,
        rtype: str,
        description: str | None,
        t_start: float,
        t_stop: float,
    ) -> None:
        """A request that raised: a failed step, its time counted, and its Error record
        (code -1, with the traceback: call it while handling the exception)."""
        self.total_time += t_stop - t_start
        self.step_success = False
        self.test_status = "Failure"
        self.total_responses += 1
        self.page_responses += 1
        self.get_sink().response(
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

    def xmlrpc_response(
        self,
        url: str,
        method: str,
        description: str | None,
        t_start: float,
        t_stop: float,
        code: int,
    ) -> None:
        """An XML-RPC call's record; code -1 (an error) while handling its exception."""
        self.total_responses += 1
        self.page_responses += 1
        result = "Error" if code == -1 else ("Successful" if self.step_success else "Failure")
        self.get_sink().response(
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

    def result(self, t_start: float, t_stop: float, test_traceback: str | None) -> None:
        """The `<testResult>` record."""
        status = self.test_status
        self.get_sink().test_result(  # every test: positional, in `ResultSink`'s order
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
            (test_traceback or "") if status != "Successful" else None,
        )
