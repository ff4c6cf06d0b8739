"""Where each sheet's table is and what it is called: header detection, the options' range and footer,
a sheet read in pieces merged as one read, column names, the table built and written."""
