"""Target monitoring: the psutil agent (`marteau monitor`, `fl-monitor-ctl`) and its samples.

Runs on the monitored hosts, so it imports none of the controller's libraries
(numpy, Ansible, ...). `sampler` reads the host, `agent` samples it every
interval within bounds, `server` is FunkLoad's XML-RPC monitor server,
`samples` the file the Ansible path writes and how the controller turns it
into FunkLoad ``<monitor>`` records.
"""
