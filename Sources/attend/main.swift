// The `attend` command line: see issue text; filled in by the BERT work.
print("attend: not implemented yet")
