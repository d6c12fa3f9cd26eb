//! Reading rows: the CSV edge cases (RFC 4180 quoting, embedded newlines, a byte
//! order mark, CRLF, empty fields, duplicate and empty headers), JSON Lines and
//! JSON arrays, and every kind of bad row with its place.

use serde_json::{Value as Json, json};

use super::read::{Format, MAX_ROW_BYTES, Place, RawRow, rows_of};

fn ok(rows: &[RawRow]) -> Vec<Json> {
    rows.iter()
        .map(|r| match &r.fields {
            Ok(map) => Json::Object(map.clone()),
            Err(p) => json!({"problem": p.message}),
        })
        .collect()
}

fn places(rows: &[RawRow]) -> Vec<Place> {
    rows.iter().map(|r| r.place).collect()
}

#[test]
fn csv_quotes_newlines_bom_crlf_and_empty_fields() {
    let text = "\u{feff}ticket,tone\r\n\"a \"\"quoted\"\" word, with a comma\",warm\r\n\"two\r\nlines\",\r\n,cold\r\n";
    let rows = rows_of(Format::Csv, text).unwrap();
    assert_eq!(
        ok(&rows),
        [
            json!({"ticket": "a \"quoted\" word, with a comma", "tone": "warm"}),
            json!({"ticket": "two\r\nlines"}),
            json!({"tone": "cold"}),
        ],
        "the BOM is not part of the first column's name; empty fields are left out"
    );
    assert_eq!(
        places(&rows),
        [
            Place::Record { record: 1, line: 2 },
            Place::Record { record: 2, line: 3 },
            Place::Record { record: 3, line: 5 },
        ]
    );
    assert_eq!(rows.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn csv_headers_twice_or_empty_refuse_the_file() {
    let e = rows_of(Format::Csv, "ticket,tone,ticket\na,b,c\n").unwrap_err();
    assert_eq!(
        e.message,
        "the CSV header names `ticket` twice (columns 1 and 3)"
    );
    let e = rows_of(Format::Csv, "ticket,,tone\na,b,c\n").unwrap_err();
    assert_eq!(e.message, "column 2 of the CSV header has no name");
    let e = rows_of(Format::Csv, "").unwrap_err();
    assert_eq!(e.message, "test.csv: the file is empty");
}

#[test]
fn csv_records_with_the_wrong_number_of_fields_or_bad_utf8_are_bad_rows() {
    let mut text = b"ticket,tone\na,b,c\nx,y\n\xff\xfe,z\n".to_vec();
    text.extend_from_slice(b"last,one\n");
    let rows = rows_of(Format::Csv, &String::from_utf8_lossy(&text)).unwrap();
    let values = ok(&rows);
    assert_eq!(
        values[0],
        json!({"problem": "it has 3 fields, the header 2"})
    );
    assert_eq!(values[1], json!({"ticket": "x", "tone": "y"}));
    assert_eq!(values[3], json!({"ticket": "last", "tone": "one"}));
}

#[test]
fn jsonl_skips_blank_lines_and_takes_crlf_and_a_bom() {
    let text = "\u{feff}{\"ticket\": \"a\"}\r\n\r\n   \n{\"ticket\": \"b\", \"n\": 2}\n{\"ticket\": \"c\"}";
    let rows = rows_of(Format::Jsonl, text).unwrap();
    assert_eq!(
        ok(&rows),
        [
            json!({"ticket": "a"}),
            json!({"ticket": "b", "n": 2}),
            json!({"ticket": "c"})
        ]
    );
    assert_eq!(
        places(&rows),
        [Place::Line(1), Place::Line(4), Place::Line(5)]
    );
    assert_eq!(
        rows.iter().map(|r| r.index).collect::<Vec<_>>(),
        [0, 1, 2],
        "blank lines are not rows"
    );
}

#[test]
fn jsonl_bad_lines_are_bad_rows_the_rest_are_read() {
    let text = "{\"ticket\": \"a\"}\n{\"ticket\": \n[1, 2]\n\"text\"\n{\"ticket\": \"e\"}\n";
    let rows = rows_of(Format::Jsonl, text).unwrap();
    let values = ok(&rows);
    assert_eq!(values.len(), 5);
    assert!(
        values[1]["problem"]
            .as_str()
            .unwrap()
            .starts_with("it is not JSON: EOF while parsing"),
        "{}",
        values[1]
    );
    assert_eq!(
        values[2],
        json!({"problem": "it is an array, not an object"})
    );
    assert_eq!(
        values[3],
        json!({"problem": "it is a string, not an object"})
    );
    assert_eq!(values[4], json!({"ticket": "e"}));
}

#[test]
fn a_row_over_the_limit_is_a_bad_row_and_the_next_is_read() {
    let long = "x".repeat(MAX_ROW_BYTES + 10);
    let text = format!("{{\"ticket\": \"{long}\"}}\n{{\"ticket\": \"b\"}}\n");
    let rows = rows_of(Format::Jsonl, &text).unwrap();
    let values = ok(&rows);
    assert!(
        values[0]["problem"]
            .as_str()
            .unwrap()
            .contains("over the 4 MiB a row may have"),
        "{}",
        values[0]
    );
    assert_eq!(values[1], json!({"ticket": "b"}));
    assert_eq!(places(&rows), [Place::Line(1), Place::Line(2)]);

    let text = format!("[{{\"ticket\": \"{long}\"}}, {{\"ticket\": \"b\"}}]");
    let values = ok(&rows_of(Format::Json, &text).unwrap());
    assert!(values[0]["problem"].as_str().unwrap().contains("MiB"));
    assert_eq!(values[1], json!({"ticket": "b"}));
}

#[test]
fn json_arrays_give_each_element_its_line() {
    let text = "[\n  {\"ticket\": \"a\"},\n  {\"ticket\": \"b\"},\n  7\n]\n";
    let rows = rows_of(Format::Json, text).unwrap();
    assert_eq!(
        ok(&rows),
        [
            json!({"ticket": "a"}),
            json!({"ticket": "b"}),
            json!({"problem": "it is a number, not an object"})
        ]
    );
    assert_eq!(
        places(&rows),
        [Place::Line(2), Place::Line(3), Place::Line(4)]
    );
}

#[test]
fn a_broken_json_array_is_a_file_error_with_its_place() {
    let e = rows_of(Format::Json, "[\n  {\"a\": 1},\n  {\"a\": }\n]").unwrap_err();
    assert!(
        e.message
            .starts_with("it is not a JSON array: line 3 column 9"),
        "{}",
        e.message
    );
    let e = rows_of(Format::Json, "{\"a\": 1}").unwrap_err();
    assert!(e.message.contains("expected `[`"), "{}", e.message);
}

#[test]
fn csv_places_count_lines_from_the_header() {
    let rows = rows_of(Format::Csv, "a\nx\n\"y\nz\"\nw").unwrap();
    assert_eq!(
        places(&rows),
        [
            Place::Record { record: 1, line: 2 },
            Place::Record { record: 2, line: 3 },
            Place::Record { record: 3, line: 5 },
        ]
    );
}
