"""Imports: spreadsheets and old CRMs' exports brought in as leads, companies,
activities and deals, quietly, resumably and undoably (docs/IMPORT.md)."""
