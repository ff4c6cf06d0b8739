"""What the sheets hold: the reader process (started under a memory limit and a timeout) and what it
reads with — fastexcel, python-calamine for the first rows, xlrd for the .xls calamine cannot be trusted
with, the packages written for the reader (one sheet's first rows, pieces of a large sheet, a package
another tool wrote, error values the reader refuses)."""
