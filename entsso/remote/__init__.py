"""How the suite reaches an estate: WinRM (winrm, ps/), SQL Server over ODBC (sql, sqlestate) and the T-SQL
it sends (tsql). Imports nothing else of the suite."""
