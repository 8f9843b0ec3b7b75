//! A bounded reading of every Parquet page header, before parquet-rs reads any of them.
//!
//! parquet-rs 60 reads a page header through a Thrift reader that trusts its input in two ways
//! a hostile file can turn into minutes of CPU (both found by the `export_file` fuzz target):
//!
//! - skipping bytes past the end of the column chunk is not an error (the reader sees end of
//!   input as zero bytes read), so a list of 2^31 doubles in an unknown field of a 20-byte
//!   header is "skipped" 2^31 times;
//! - a list, set or map of booleans in an unknown field is skipped without consuming a byte per
//!   element (the compact protocol writes one), so its claimed count costs that many iterations
//!   whatever the file's length, and nesting multiplies them.
//!
//! It also sizes a page's dictionary by the value count the header claims, before reading it
//! (`tools/tests/data/parquet-dictionary-claim.parquet`: 939,524,092 values in a 9 kB file).
//!
//! So [`check_pages`] walks each column chunk exactly as parquet-rs's page reader does (the
//! `Values` state of `SerializedPageReader`: header, page body of `compressed_page_size`
//! bytes, next header, until the chunk's `total_compressed_size` is used up) and reads every
//! header itself with the page header's Thrift schema. It refuses:
//!
//! - a field the schema knows written with another wire type (parquet-rs reads known fields
//!   by their schema type whatever the wire says: that is where the two readings could part);
//! - a container of booleans in an unknown field, and a container claiming more elements than
//!   bytes are left in the chunk (every other element takes at least one);
//! - anything running past the end of its column chunk, varints over ten bytes, values that do
//!   not fit their type, nesting deeper than [`MAX_DEPTH`];
//! - a page whose body does not fit in what is left of its chunk, and a page claiming more
//!   values than its column chunk holds.
//!
//! Every header this accepts is one parquet-rs reads the same bytes of, consuming the same
//! length, so what decoding then does is bounded by the file's size. The decoding must read
//! pages the same way: [`crate::file::ExportReader`] opens Parquet with the page index policy
//! `Skip` (the default), so parquet-rs never jumps to page offsets of its own.
//!
//! Not covered: the footer (`FileMetaData`), which parquet-rs reads from a slice (end of input
//! is an error there) but whose unknown-field skipping has the same boolean-container
//! behaviour. Checking it the same way means the whole `FileMetaData` schema; docs/reliability.md
//! records this as a known limit.

use std::io::Read;

use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;

/// Deepest nesting of Thrift structs and containers accepted in a page header. A page header
/// nests three deep (header → data page header → statistics); parquet-rs gives up at 64.
pub const MAX_DEPTH: u32 = 16;

/// Parquet's page types, as the header's field 1 carries them.
const DATA_PAGE: i32 = 0;
const INDEX_PAGE: i32 = 1;
const DICTIONARY_PAGE: i32 = 2;
const DATA_PAGE_V2: i32 = 3;

/// What the walk needs of one page header.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageHeader {
    /// Field 1: the page type.
    pub page_type: Option<i32>,
    /// Field 2.
    pub uncompressed_page_size: Option<i32>,
    /// Field 3: the length of the page body after the header.
    pub compressed_page_size: Option<i32>,
    /// `num_values` of whichever page-specific header is present (fields 5.1, 7.1 or 8.1).
    pub num_values: Option<i32>,
    /// Bytes the header took.
    pub len: u64,
}

/// A field's type in the page header's schema.
#[derive(Clone, Copy)]
enum Ty {
    Bool,
    I32,
    I64,
    Binary,
    Struct(&'static [Field]),
}

/// A field of the page header's schema; `num_values` marks the field whose value is a page's
/// value count.
#[derive(Clone, Copy)]
struct Field {
    id: i16,
    ty: Ty,
    role: Role,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    None,
    PageType,
    Uncompressed,
    Compressed,
    NumValues,
}

const fn field(id: i16, ty: Ty) -> Field {
    Field { id, ty, role: Role::None }
}

const fn with_role(id: i16, ty: Ty, role: Role) -> Field {
    Field { id, ty, role }
}

/// `PageStatistics` (parquet.thrift `Statistics`).
const STATISTICS: &[Field] = &[
    field(1, Ty::Binary),
    field(2, Ty::Binary),
    field(3, Ty::I64),
    field(4, Ty::I64),
    field(5, Ty::Binary),
    field(6, Ty::Binary),
    field(7, Ty::Bool),
    field(8, Ty::Bool),
    field(9, Ty::I64),
];

const DATA_PAGE_HEADER: &[Field] = &[
    with_role(1, Ty::I32, Role::NumValues),
    field(2, Ty::I32),
    field(3, Ty::I32),
    field(4, Ty::I32),
    field(5, Ty::Struct(STATISTICS)),
];

const INDEX_PAGE_HEADER: &[Field] = &[];

const DICTIONARY_PAGE_HEADER: &[Field] =
    &[with_role(1, Ty::I32, Role::NumValues), field(2, Ty::I32), field(3, Ty::Bool)];

const DATA_PAGE_HEADER_V2: &[Field] = &[
    with_role(1, Ty::I32, Role::NumValues),
    field(2, Ty::I32),
    field(3, Ty::I32),
    field(4, Ty::I32),
    field(5, Ty::I32),
    field(6, Ty::I32),
    field(7, Ty::Bool),
    field(8, Ty::Struct(STATISTICS)),
];

const PAGE_HEADER: &[Field] = &[
    with_role(1, Ty::I32, Role::PageType),
    with_role(2, Ty::I32, Role::Uncompressed),
    with_role(3, Ty::I32, Role::Compressed),
    field(4, Ty::I32),
    field(5, Ty::Struct(DATA_PAGE_HEADER)),
    field(6, Ty::Struct(INDEX_PAGE_HEADER)),
    field(7, Ty::Struct(DICTIONARY_PAGE_HEADER)),
    field(8, Ty::Struct(DATA_PAGE_HEADER_V2)),
];

/// Thrift compact protocol wire types.
const BOOLEAN_TRUE: u8 = 1;
const BOOLEAN_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;
const UUID: u8 = 13;

fn wire_name(wire: u8) -> &'static str {
    match wire {
        BOOLEAN_TRUE | BOOLEAN_FALSE => "bool",
        BYTE => "byte",
        I16 => "i16",
        I32 => "i32",
        I64 => "i64",
        DOUBLE => "double",
        BINARY => "binary",
        LIST => "list",
        SET => "set",
        MAP => "map",
        STRUCT => "struct",
        UUID => "uuid",
        _ => "unknown",
    }
}

/// A header's bytes: never more than `left`, and the end of input is an error.
struct Input<R> {
    inner: R,
    left: u64,
    taken: u64,
}

type Result<T> = std::result::Result<T, String>;

impl<R: Read> Input<R> {
    fn byte(&mut self) -> Result<u8> {
        if self.left == 0 {
            return Err("the page header runs past the end of its column chunk".into());
        }
        let mut byte = [0u8; 1];
        self.inner.read_exact(&mut byte).map_err(|e| format!("the page header cannot be read: {e}"))?;
        self.left -= 1;
        self.taken += 1;
        Ok(byte[0])
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        if n > self.left {
            return Err(format!("a {n}-byte value runs past the end of its column chunk ({} bytes left)", self.left));
        }
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| format!("the page header cannot be read: {e}"))?;
        if copied != n {
            return Err("the page header runs past the end of the file".into());
        }
        self.left -= n;
        self.taken += n;
        Ok(())
    }

    /// An unsigned LEB128 varint of at most ten bytes that fits in 64 bits.
    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for index in 0..10 {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if index == 9 && bits > 1 {
                break;
            }
            value |= bits << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint in the page header is longer than 64 bits".into())
    }

    fn zigzag(&mut self) -> Result<i64> {
        let raw = self.varint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32> {
        let value = self.zigzag()?;
        i32::try_from(value).map_err(|_| format!("the page header's i32 {value} is out of range"))
    }

    /// A count that must fit in an i32 (as parquet-rs requires) and, since every element
    /// takes at least a byte, in what is left of the chunk.
    fn count(&mut self, raw: u64, what: &str) -> Result<u64> {
        if i32::try_from(raw).is_err() || raw > self.left {
            return Err(format!(
                "a {what} in the page header claims {raw} elements with {} bytes left in its column chunk",
                self.left
            ));
        }
        Ok(raw)
    }

    /// A struct of `schema`, or of an unknown schema (`None`: every field skipped).
    fn read_struct(&mut self, schema: Option<&'static [Field]>, depth: u32, header: &mut PageHeader) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(format!("the page header nests deeper than {MAX_DEPTH}"));
        }
        let mut last_id = 0i16;
        loop {
            let head = self.byte()?;
            // parquet-rs reads any byte whose low nibble is 0 as the end of the struct.
            let wire = head & 0x0f;
            if wire == 0 {
                return Ok(());
            }
            if wire > UUID {
                return Err(format!("the page header has a field of unknown wire type {wire}"));
            }
            let delta = i16::from(head >> 4);
            let id = if delta != 0 {
                last_id.checked_add(delta).ok_or("a field id in the page header overflows")?
            } else {
                let id = self.zigzag()?;
                i16::try_from(id).map_err(|_| format!("the page header's field id {id} is out of range"))?
            };
            last_id = id;
            match schema.and_then(|fields| fields.iter().find(|f| f.id == id)) {
                Some(known) => self.read_known(known, wire, depth, header)?,
                None => self.skip_value(wire, depth + 1)?,
            }
        }
    }

    fn read_known(&mut self, known: &Field, wire: u8, depth: u32, header: &mut PageHeader) -> Result<()> {
        let expected = match known.ty {
            Ty::Bool => BOOLEAN_TRUE,
            Ty::I32 => I32,
            Ty::I64 => I64,
            Ty::Binary => BINARY,
            Ty::Struct(_) => STRUCT,
        };
        let matches = wire == expected || (expected == BOOLEAN_TRUE && wire == BOOLEAN_FALSE);
        if !matches {
            return Err(format!(
                "field {} of the page header is written as {}, the Parquet format says {}",
                known.id,
                wire_name(wire),
                wire_name(expected)
            ));
        }
        match known.ty {
            Ty::Bool => {}
            Ty::I32 => {
                let value = self.i32()?;
                match known.role {
                    Role::PageType => header.page_type = Some(value),
                    Role::Uncompressed => header.uncompressed_page_size = Some(value),
                    Role::Compressed => header.compressed_page_size = Some(value),
                    Role::NumValues => header.num_values = Some(value),
                    Role::None => {}
                }
            }
            Ty::I64 => {
                self.zigzag()?;
            }
            Ty::Binary => {
                let len = self.varint()?;
                self.skip(len)?;
            }
            Ty::Struct(fields) => self.read_struct(Some(fields), depth + 1, header)?,
        }
        Ok(())
    }

    /// Skips a value of an unknown field by its wire type, as parquet-rs does, refusing what
    /// parquet-rs would skip differently from the bytes (containers of booleans).
    fn skip_value(&mut self, wire: u8, depth: u32) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(format!("the page header nests deeper than {MAX_DEPTH}"));
        }
        match wire {
            BOOLEAN_TRUE | BOOLEAN_FALSE => Ok(()),
            BYTE => self.byte().map(drop),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.skip(8),
            BINARY => {
                let len = self.varint()?;
                self.skip(len)
            }
            UUID => self.skip(16),
            STRUCT => self.read_struct(None, depth, &mut PageHeader::default()),
            LIST | SET => {
                let head = self.byte()?;
                if head == 0 {
                    return Ok(());
                }
                let element = head & 0x0f;
                let short = u64::from(head >> 4);
                let raw = if short != 15 { short } else { self.varint()? };
                element_types(&[element], raw)?;
                let count = self.count(raw, wire_name(wire))?;
                self.skip_elements(&[element], count, depth)
            }
            MAP => {
                let raw = self.varint()?;
                if raw == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                element_types(&[kinds >> 4, kinds & 0x0f], raw)?;
                let count = self.count(raw, "map")?;
                self.skip_elements(&[kinds >> 4, kinds & 0x0f], count, depth)
            }
            other => Err(format!("the page header has a field of unknown wire type {other}")),
        }
    }

    fn skip_elements(&mut self, types: &[u8], count: u64, depth: u32) -> Result<()> {
        for _ in 0..count {
            for &element in types {
                self.skip_value(element, depth + 1)?;
            }
        }
        Ok(())
    }
}

/// Refuses element types parquet-rs would skip differently from the bytes (booleans, which it
/// skips without reading the byte each takes) and unknown ones.
fn element_types(types: &[u8], count: u64) -> Result<()> {
    for &element in types {
        if element == BOOLEAN_TRUE || element == BOOLEAN_FALSE {
            if count > 0 {
                return Err("the page header holds a container of booleans in an unknown field (parquet-rs 60 would skip it without reading it)".into());
            }
        } else if element == 0 || element > UUID {
            return Err(format!("the page header has a container of unknown element type {element}"));
        }
    }
    Ok(())
}

/// Reads one page header from `read`, which holds at most `left` bytes of its column chunk.
pub fn read_header(read: impl Read, left: u64) -> Result<PageHeader> {
    let mut input = Input { inner: read, left, taken: 0 };
    let mut header = PageHeader::default();
    input.read_struct(Some(PAGE_HEADER), 0, &mut header)?;
    header.len = input.taken;
    Ok(header)
}

/// Walks every page of every column chunk of `file` (see the module documentation).
pub fn check_pages<R: ChunkReader>(file: &R, metadata: &ParquetMetaData) -> std::result::Result<(), String> {
    for (group_index, group) in metadata.row_groups().iter().enumerate() {
        for (column, chunk) in group.columns().iter().enumerate() {
            let at = |why: String| format!("row group {group_index}, column {column}: {why}");
            let start = chunk.dictionary_page_offset().unwrap_or_else(|| chunk.data_page_offset());
            let (Ok(start), Ok(len)) = (u64::try_from(start), u64::try_from(chunk.compressed_size())) else {
                return Err(at(format!(
                    "the column chunk starts at {start} and is {} bytes long",
                    chunk.compressed_size()
                )));
            };
            if start.checked_add(len).is_none_or(|end| end > file.len()) {
                return Err(at(format!(
                    "the column chunk's {len} bytes at offset {start} run past the end of the {}-byte file",
                    file.len()
                )));
            }
            let values = chunk.num_values();
            let (mut offset, mut left) = (start, len);
            let mut page = 0u64;
            while left > 0 {
                let read = file.get_read(offset).map_err(|e| at(e.to_string()))?;
                let header = read_header(read, left).map_err(|why| at(format!("page {page}: {why}")))?;
                let body = header
                    .compressed_page_size
                    .ok_or_else(|| at(format!("page {page} has no compressed_page_size")))?;
                let page_type = header.page_type.ok_or_else(|| at(format!("page {page} has no type")))?;
                left -= header.len;
                offset += header.len;
                let body = u64::try_from(body).ok().filter(|&body| body <= left).ok_or_else(|| {
                    at(format!(
                        "page {page}'s {body}-byte body does not fit in the {left} bytes left of its column chunk"
                    ))
                })?;
                if header.uncompressed_page_size.is_none_or(|size| size < 0) {
                    return Err(at(format!("page {page} has no valid uncompressed_page_size")));
                }
                if matches!(page_type, DATA_PAGE | DICTIONARY_PAGE | DATA_PAGE_V2) {
                    let claimed = header.num_values.unwrap_or(0);
                    if i64::from(claimed) > values {
                        return Err(at(format!(
                            "a {} page claims {claimed} values, its column chunk holds {values}",
                            if page_type == DICTIONARY_PAGE { "dictionary" } else { "data" }
                        )));
                    }
                } else if page_type != INDEX_PAGE {
                    return Err(at(format!("page {page} has unknown page type {page_type}")));
                }
                left -= body;
                offset += body;
                page += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact-protocol field header in short form.
    fn head(delta: u8, wire: u8) -> u8 {
        (delta << 4) | wire
    }

    fn zigzag(value: i64) -> Vec<u8> {
        let mut raw = ((value << 1) ^ (value >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let byte = (raw & 0x7f) as u8;
            raw >>= 7;
            if raw == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// A dictionary page header: type 2, sizes, and a dictionary page header claiming `values`.
    fn dictionary_header(values: i64, extra: &[u8]) -> Vec<u8> {
        let mut bytes = vec![head(1, I32)];
        bytes.extend(zigzag(2));
        bytes.push(head(1, I32));
        bytes.extend(zigzag(10));
        bytes.push(head(1, I32));
        bytes.extend(zigzag(10));
        bytes.extend_from_slice(extra);
        bytes.push(head(4, STRUCT)); // field 7 after 3
        bytes.push(head(1, I32));
        bytes.extend(zigzag(values));
        bytes.push(head(1, I32));
        bytes.extend(zigzag(0));
        bytes.push(0);
        bytes.push(0);
        bytes
    }

    #[test]
    fn a_well_formed_header_is_read_with_its_length() {
        let bytes = dictionary_header(3, &[]);
        let header = read_header(&bytes[..], 100).unwrap();
        assert_eq!(header.page_type, Some(DICTIONARY_PAGE));
        assert_eq!(header.compressed_page_size, Some(10));
        assert_eq!(header.num_values, Some(3));
        assert_eq!(header.len, bytes.len() as u64);
    }

    #[test]
    fn a_header_running_past_its_chunk_is_refused() {
        let bytes = dictionary_header(3, &[]);
        let err = read_header(&bytes[..], bytes.len() as u64 - 1).unwrap_err();
        assert!(err.contains("past the end of its column chunk"), "{err}");
    }

    #[test]
    fn a_list_of_booleans_in_an_unknown_field_is_refused() {
        // Field 9 of the header (unknown): a list of 2^31 - 1 booleans in seven bytes.
        let bytes = [head(9, LIST), 0xf0 | BOOLEAN_TRUE, 0xff, 0xff, 0xff, 0xff, 0x07, 0];
        let err = read_header(&bytes[..], 1 << 20).unwrap_err();
        assert!(err.contains("container of booleans"), "{err}");
        // An empty one is harmless.
        let empty = [head(9, LIST), BOOLEAN_TRUE, 0];
        assert_eq!(read_header(&empty[..], 100).unwrap().len, 3);
    }

    #[test]
    fn a_list_claiming_more_elements_than_bytes_left_is_refused() {
        let mut bytes = vec![head(9, LIST), 0xf0 | DOUBLE];
        bytes.extend([0xff, 0xff, 0xff, 0xff, 0x07]);
        bytes.push(0);
        let err = read_header(&bytes[..], 1 << 20).unwrap_err();
        assert!(err.contains("claims 2147483647 elements"), "{err}");
        // Eight doubles in 64 bytes are fine; the same count with 63 bytes left is not.
        let mut doubles = vec![head(9, LIST), (8 << 4) | DOUBLE];
        doubles.extend([0u8; 64]);
        doubles.push(0);
        let header = read_header(&doubles[..], doubles.len() as u64).unwrap();
        assert_eq!(header.len, doubles.len() as u64);
        assert!(read_header(&doubles[..], doubles.len() as u64 - 2).is_err());
    }

    #[test]
    fn a_known_field_with_another_wire_type_is_refused() {
        // Field 3 (compressed_page_size) written as a binary.
        let bytes = [head(3, BINARY), 1, b'x', 0];
        let err = read_header(&bytes[..], 100).unwrap_err();
        assert!(err.contains("field 3 of the page header is written as binary"), "{err}");
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let mut bytes = vec![head(9, STRUCT)];
        for _ in 0..MAX_DEPTH + 2 {
            bytes.push(head(1, STRUCT));
        }
        bytes.extend(std::iter::repeat_n(0, MAX_DEPTH as usize + 4));
        let err = read_header(&bytes[..], 1000).unwrap_err();
        assert!(err.contains("nests deeper"), "{err}");
    }

    #[test]
    fn an_over_long_varint_is_refused() {
        let mut bytes = vec![head(1, I32)];
        bytes.extend([0x80; 11]);
        let err = read_header(&bytes[..], 100).unwrap_err();
        assert!(err.contains("longer than 64 bits"), "{err}");
    }
}
