//! Printing read results as a table for people, JSON for programs or CSV for spreadsheets.

use std::io::Write;

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// A rectangular result: a header and rows of cells, plus the JSON document it came from.
pub struct Tabular {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Tabular {
    pub fn new(header: &[&str], rows: Vec<Vec<String>>) -> Tabular {
        Tabular {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows,
        }
    }
}

/// Writes `json` as pretty JSON, or `table` as aligned columns or CSV.
pub fn print(format: Format, json: &impl serde::Serialize, table: &Tabular, out: &mut dyn Write) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, json)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(&table.header)?;
            for row in &table.rows {
                writer.write_record(row)?;
            }
            writer.flush()?;
        }
        Format::Table => write_aligned(table, out)?,
    }
    Ok(())
}

/// Columns padded to their widest cell; numbers (cells starting with a digit or `$`) right-aligned.
fn write_aligned(table: &Tabular, out: &mut dyn Write) -> std::io::Result<()> {
    let width = |i: usize| {
        std::iter::once(&table.header[i])
            .chain(table.rows.iter().map(|r| &r[i]))
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..table.header.len()).map(width).collect();
    // `1,234`, `$0.78`, `-2.5`, `80 %`, or `-` for none; not dates, ids or sentences.
    let numeric_cell = |cell: &str| {
        let number = cell.strip_prefix(['$', '-']).unwrap_or(cell);
        let number = number.trim_end_matches('%').trim_end();
        cell == "-" || !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == ',' || c == '.')
    };
    // A column is right-aligned, header included, when every cell in it is a number.
    let numeric: Vec<bool> = (0..table.header.len())
        .map(|i| !table.rows.is_empty() && table.rows.iter().all(|r| r[i].is_empty() || numeric_cell(&r[i])))
        .collect();
    let line = |cells: &[String], out: &mut dyn Write| -> std::io::Result<()> {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths.iter().zip(&numeric))
            .map(|(cell, (w, right))| {
                if *right {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end())
    };
    line(&table.header, out)?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    writeln!(out, "{}", rule.join("  "))?;
    for row in &table.rows {
        line(row, out)?;
    }
    if table.rows.is_empty() {
        writeln!(out, "(no rows)")?;
    }
    Ok(())
}

/// Thousands separators for token counts in tables.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_and_alignment() {
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(12), "12");
        let table = Tabular {
            header: vec!["user".into(), "cost".into()],
            rows: vec![vec!["alice".into(), "$1.00".into()], vec!["bo".into(), "$12.50".into()]],
        };
        let mut out = Vec::new();
        print(Format::Table, &(), &table, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "user     cost\n-----  ------\nalice   $1.00\nbo     $12.50\n"
        );
        let mut csv_out = Vec::new();
        print(Format::Csv, &(), &table, &mut csv_out).unwrap();
        assert_eq!(
            String::from_utf8(csv_out).unwrap(),
            "user,cost\nalice,$1.00\nbo,$12.50\n"
        );
    }

    #[test]
    fn dates_and_sentences_starting_with_a_digit_stay_left_aligned() {
        let table = Tabular::new(
            &["day", "calls", "evidence"],
            vec![
                vec!["2026-11-02".into(), "130".into(), "130 calls at night".into()],
                vec!["2026-11-03".into(), "-".into(), "9 calls".into()],
            ],
        );
        let mut out = Vec::new();
        print(Format::Table, &(), &table, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "day         calls  evidence\n----------  -----  ------------------\n\
             2026-11-02    130  130 calls at night\n2026-11-03      -  9 calls\n"
        );
    }
}
