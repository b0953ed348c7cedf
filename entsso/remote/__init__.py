"""How the suite reaches an estate: WinRM (winrm; envelope: what a call carries; certificates; ps/), SQL Server
over ODBC (sql, sqlestate) and the T-SQL it sends (tsql), the fan-out over hosts (fanout) and one error root
for whatever an estate refuses (errors.EstateError). Imports nothing else of the suite."""
