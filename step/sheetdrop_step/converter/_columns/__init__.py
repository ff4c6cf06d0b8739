"""What type each column has: the column rules over a whole column, the types a folder's options ask
for, rescue, and every cell as Excel shows it as text; in the terms of the one type vocabulary,
``sheetdrop_contract.column_types``."""
