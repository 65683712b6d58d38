//! Spreadsheet import of residents (placeholder until written).
