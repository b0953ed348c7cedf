"""The lab: a simulated clustered-SSO estate (cluster nodes, BizTalk servers, SQL Server) that the real
WinRM client and the suite's SQL layer talk to on loopback. See docs/lab.md."""
