"""A FunkLoad test's per-request steps: the page, its request, their records.

`FunkLoadTestCase` (``test`` here) stays interpreted, because users subclass
it; what it does for every request lives here, in a module the package's
build compiles (`marteau.native`): the page with its redirects
(`browse`), one request and its counters (`connect`), the response and
``<testResult>`` records (`log_response`, `log_result`) and the per-test
reset (`clear_context`). The test case's methods of those names call these.
The rare paths (auto-loaded links, dumps, ``-l`` loops, debug logging,
errors) stay methods of the test case, called through it.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urljoin

from marteau.engine.http_error import caused_by
from marteau.funkload.encoding import encode_body, get_url_with_params
from marteau.funkload.response import HTTPResponse

REDIRECT_CODES = (301, 302, 303, 307)
MAX_REDIRECTS = 10
_REFERER_TYPES = frozenset(("get", "post", "put", "delete"))
_NO_BODY_TYPES = frozenset(("get", "delete", "head", "options"))
_DEBUG = logging.DEBUG


def clear_context(test: Any) -> None:
    """Reset the per-test state: browser, counters, auth, certificates, User-Agent."""
    browser = test._browser
    browser.clear_context()
    browser.debug_headers = test.debug_level >= 3
    test.steps = 0
    test.page_responses = 0
    test.total_responses = 0
    test.total_time = 0.0
    test.total_pages = 0
    test.total_images = 0
    test.total_links = 0
    test.total_redirects = 0
    test.total_xmlrpc = 0
    test.step_success = True
    test.test_status = "Successful"
    test._authinfo = None
    test._keyfile_path = None
    test._certfile_path = None
    test.setUserAgent(test.default_user_agent)


def browse(
    test: Any,
    url_in: str,
    params_in: Any = None,
    description: str | None = None,
    ok_codes: Any = None,
    method: str = "post",
    follow_redirect: bool = True,
    load_auto_links: bool = True,
    sleep: bool = True,
) -> HTTPResponse:
    """One page: the request, its redirects and its images/stylesheets, then think time."""
    if ok_codes is None:
        ok_codes = test.ok_codes
    if params_in and method == "get":
        url = get_url_with_params(url_in, params_in)
        params = None
    else:
        url = url_in
        params = params_in
    test.steps += 1
    test.page_responses = 0
    logger = test.logger
    if logger.isEnabledFor(_DEBUG):
        test.logd(f"{method.upper()}: {url}\n\tPage {test.steps}: {description or ''} ...")
        if params is not None:
            test.logdd(f"\tparams: {params!r}")
    response = connect(test, url, params, ok_codes, method, description)
    if follow_redirect:
        redirects = 0
        while response.code in REDIRECT_CODES and redirects < MAX_REDIRECTS:
            location = response.raw.header("location")
            if not location:
                break
            redirects += 1
            url = urljoin(url, location.strip())
            code = response.code
            if code in (302, 303):
                method = "get"
            if code == 303:  # HTTP/1.1: do not keep this connection alive
                test.setHeader("Connection", "close")
            if logger.isEnabledFor(_DEBUG):
                test.logd(f" Load redirect link: {url}")
            response = connect(test, url, None, ok_codes, method, None, redirect=True)
    if load_auto_links and not test._simple_fetch and response.is_html:
        test._load_auto_links(response, url)
    test._response = response
    if test._dumping:
        test._dump_content(response)
    if test._loop_mode and not test._looping:
        test._loop_page(
            (url_in, params_in, description, ok_codes, method, follow_redirect, load_auto_links)
        )
    if sleep and not test._looping:
        test.sleep()
    return response


def connect(
    test: Any,
    url: str,
    params: Any,
    ok_codes: Any,
    rtype: str,
    description: str | None,
    redirect: bool = False,
) -> HTTPResponse:
    """One request, logged; a non-ok code is a Failure, an exception an Error record."""
    body = content_type = None
    if params is not None and rtype.lower() not in _NO_BODY_TYPES:
        body, content_type = encode_body(params)
    verb = rtype.upper()
    t_start = time.time()
    try:
        response = test._browser.fetch(verb, url, body, content_type)
    except Exception as exc:
        t_stop = time.time()
        test.total_time += t_stop - t_start
        test.step_success = False
        test.test_status = "Failure"
        test._last_request = (verb, url, None)
        test._log_response_error(url, rtype, description, t_start, t_stop)
        if test.logger.isEnabledFor(_DEBUG):
            test.logd(f" Failed in {t_stop - t_start:.3f}s")
        if isinstance(exc, OSError):
            raise caused_by(OSError(f"Can't load {url}."), exc)  # noqa: B904 - the cause set by caused_by
        raise
    t_stop = time.time()
    test.total_time += t_stop - t_start
    code = response.code
    test._last_request = (verb, url, code)
    if code not in ok_codes:
        test.step_success = False
        test.test_status = "Failure"
        log_response(test, response, rtype, description, t_start, t_stop, log_body=True)
        if test._dumping:
            test._dump_content(response)
        raise test.failureException(str(response))
    if redirect:
        test.total_redirects += 1
    else:
        test.total_pages += 1
    log_response(test, response, rtype, description, t_start, t_stop)
    if rtype in _REFERER_TYPES:
        test._browser.set_header("Referer", url)
    if test.logger.isEnabledFor(_DEBUG):
        test.logd(f" Done in {t_stop - t_start:.3f}s")
    return response


def log_response(
    test: Any,
    response: HTTPResponse,
    rtype: str,
    description: str | None,
    t_start: float,
    t_stop: float,
    log_body: bool = False,
) -> None:
    """A response's record (with its headers and body when ``log_body``: a failure)."""
    test.total_responses += 1
    test.page_responses += 1
    result = "Successful" if test.step_success else "Failure"
    if log_body:
        test._sink.response(
            cycle=test.cycle,
            cvus=test.cvus,
            thread=test.thread_id,
            suite=test.suite_name,
            name=test.test_name,
            step=test.steps,
            number=test.page_responses,
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
    else:
        test._sink.response(
            cycle=test.cycle,
            cvus=test.cvus,
            thread=test.thread_id,
            suite=test.suite_name,
            name=test.test_name,
            step=test.steps,
            number=test.page_responses,
            type=rtype,
            result=result,
            url=response.url,
            code=response.code,
            description=description or "",
            time=t_start,
            duration=t_stop - t_start,
        )


def log_result(test: Any, t_start: float, t_stop: float) -> None:
    """The `<testResult>` record."""
    status = test.test_status
    test._sink.test_result(
        cycle=test.cycle,
        cvus=test.cvus,
        thread=test.thread_id,
        suite=test.suite_name,
        name=test.test_name,
        time=t_start,
        result=status,
        steps=test.steps,
        duration=t_stop - t_start,
        connection_duration=test.total_time,
        requests=test.total_responses,
        pages=test.total_pages,
        xmlrpc=test.total_xmlrpc,
        redirects=test.total_redirects,
        images=test.total_images,
        links=test.total_links,
        traceback=(test._test_traceback or "") if status != "Successful" else None,
    )
