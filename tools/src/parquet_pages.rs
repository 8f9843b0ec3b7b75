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
//! The footer (`FileMetaData`) is read the same way first ([`check_footer`]), with the whole
//! `FileMetaData` schema: parquet-rs reads it from a slice (end of input is an error there), but
//! its skipping of unknown fields has the same boolean-container behaviour (found by the
//! `export_file` fuzz target's hour: 3.3 s for an 8.7 kB file, and a few bytes more add seconds).

use std::io::Read;

use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;

/// Deepest nesting of Thrift structs and containers accepted in a page header or a footer. A
/// page header nests three deep (header → data page header → statistics), a footer seven
/// (file → row groups → row group → columns → column → metadata → key-value list → key-value);
/// parquet-rs gives up at 64.
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
    Byte,
    I16,
    I32,
    I64,
    Double,
    Binary,
    Struct(&'static [Field]),
    List(&'static Ty),
}

impl Ty {
    /// The compact protocol wire type of a value of this type.
    fn wire(self) -> u8 {
        match self {
            Ty::Bool => BOOLEAN_TRUE,
            Ty::Byte => BYTE,
            Ty::I16 => I16,
            Ty::I32 => I32,
            Ty::I64 => I64,
            Ty::Double => DOUBLE,
            Ty::Binary => BINARY,
            Ty::Struct(_) => STRUCT,
            Ty::List(_) => LIST,
        }
    }
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

/// The footer's schema (`FileMetaData` of parquet.thrift, every field parquet-rs 60.1 knows,
/// with the types it reads them as; unions are structs with one field set).
const EMPTY: &[Field] = &[];
const KEY_VALUE: &[Field] = &[field(1, Ty::Binary), field(2, Ty::Binary)];
const DECIMAL_TYPE: &[Field] = &[field(1, Ty::I32), field(2, Ty::I32)];
const TIME_UNIT: &[Field] = &[field(1, Ty::Struct(EMPTY)), field(2, Ty::Struct(EMPTY)), field(3, Ty::Struct(EMPTY))];
/// `TimeType` and `TimestampType`.
const TIME_TYPE: &[Field] = &[field(1, Ty::Bool), field(2, Ty::Struct(TIME_UNIT))];
const INT_TYPE: &[Field] = &[field(1, Ty::Byte), field(2, Ty::Bool)];
const VARIANT_TYPE: &[Field] = &[field(1, Ty::Byte)];
const GEOMETRY_TYPE: &[Field] = &[field(1, Ty::Binary)];
const GEOGRAPHY_TYPE: &[Field] = &[field(1, Ty::Binary), field(2, Ty::I32)];
const LOGICAL_TYPE: &[Field] = &[
    field(1, Ty::Struct(EMPTY)),
    field(2, Ty::Struct(EMPTY)),
    field(3, Ty::Struct(EMPTY)),
    field(4, Ty::Struct(EMPTY)),
    field(5, Ty::Struct(DECIMAL_TYPE)),
    field(6, Ty::Struct(EMPTY)),
    field(7, Ty::Struct(TIME_TYPE)),
    field(8, Ty::Struct(TIME_TYPE)),
    field(10, Ty::Struct(INT_TYPE)),
    field(11, Ty::Struct(EMPTY)),
    field(12, Ty::Struct(EMPTY)),
    field(13, Ty::Struct(EMPTY)),
    field(14, Ty::Struct(EMPTY)),
    field(15, Ty::Struct(EMPTY)),
    field(16, Ty::Struct(VARIANT_TYPE)),
    field(17, Ty::Struct(GEOMETRY_TYPE)),
    field(18, Ty::Struct(GEOGRAPHY_TYPE)),
    field(19, Ty::Struct(EMPTY)),
];
const SCHEMA_ELEMENT: &[Field] = &[
    field(1, Ty::I32),
    field(2, Ty::I32),
    field(3, Ty::I32),
    field(4, Ty::Binary),
    field(5, Ty::I32),
    field(6, Ty::I32),
    field(7, Ty::I32),
    field(8, Ty::I32),
    field(9, Ty::I32),
    field(10, Ty::Struct(LOGICAL_TYPE)),
];
const PAGE_ENCODING_STATS: &[Field] = &[field(1, Ty::I32), field(2, Ty::I32), field(3, Ty::I32)];
const SIZE_STATISTICS: &[Field] = &[field(1, Ty::I64), field(2, Ty::List(&Ty::I64)), field(3, Ty::List(&Ty::I64))];
const BOUNDING_BOX: &[Field] = &[
    field(1, Ty::Double),
    field(2, Ty::Double),
    field(3, Ty::Double),
    field(4, Ty::Double),
    field(5, Ty::Double),
    field(6, Ty::Double),
    field(7, Ty::Double),
    field(8, Ty::Double),
];
const GEOSPATIAL_STATISTICS: &[Field] = &[field(1, Ty::Struct(BOUNDING_BOX)), field(2, Ty::List(&Ty::I32))];
const COLUMN_META_DATA: &[Field] = &[
    field(1, Ty::I32),
    field(2, Ty::List(&Ty::I32)),
    field(3, Ty::List(&Ty::Binary)),
    field(4, Ty::I32),
    field(5, Ty::I64),
    field(6, Ty::I64),
    field(7, Ty::I64),
    field(8, Ty::List(&Ty::Struct(KEY_VALUE))),
    field(9, Ty::I64),
    field(10, Ty::I64),
    field(11, Ty::I64),
    field(12, Ty::Struct(STATISTICS)),
    field(13, Ty::List(&Ty::Struct(PAGE_ENCODING_STATS))),
    field(14, Ty::I64),
    field(15, Ty::I32),
    field(16, Ty::Struct(SIZE_STATISTICS)),
    field(17, Ty::Struct(GEOSPATIAL_STATISTICS)),
];
const ENCRYPTION_WITH_COLUMN_KEY: &[Field] = &[field(1, Ty::List(&Ty::Binary)), field(2, Ty::Binary)];
const COLUMN_CRYPTO_META_DATA: &[Field] =
    &[field(1, Ty::Struct(EMPTY)), field(2, Ty::Struct(ENCRYPTION_WITH_COLUMN_KEY))];
const COLUMN_CHUNK: &[Field] = &[
    field(1, Ty::Binary),
    field(2, Ty::I64),
    field(3, Ty::Struct(COLUMN_META_DATA)),
    field(4, Ty::I64),
    field(5, Ty::I32),
    field(6, Ty::I64),
    field(7, Ty::I32),
    field(8, Ty::Struct(COLUMN_CRYPTO_META_DATA)),
    field(9, Ty::Binary),
];
const SORTING_COLUMN: &[Field] = &[field(1, Ty::I32), field(2, Ty::Bool), field(3, Ty::Bool)];
const ROW_GROUP: &[Field] = &[
    field(1, Ty::List(&Ty::Struct(COLUMN_CHUNK))),
    field(2, Ty::I64),
    field(3, Ty::I64),
    field(4, Ty::List(&Ty::Struct(SORTING_COLUMN))),
    field(5, Ty::I64),
    field(6, Ty::I64),
    field(7, Ty::I16),
];
const AES_GCM: &[Field] = &[field(1, Ty::Binary), field(2, Ty::Binary), field(3, Ty::Bool)];
const ENCRYPTION_ALGORITHM: &[Field] = &[field(1, Ty::Struct(AES_GCM)), field(2, Ty::Struct(AES_GCM))];
const FILE_META_DATA: &[Field] = &[
    field(1, Ty::I32),
    field(2, Ty::List(&Ty::Struct(SCHEMA_ELEMENT))),
    field(3, Ty::I64),
    field(4, Ty::List(&Ty::Struct(ROW_GROUP))),
    field(5, Ty::List(&Ty::Struct(KEY_VALUE))),
    field(6, Ty::Binary),
    field(7, Ty::List(&Ty::Struct(EMPTY))),
    field(8, Ty::Struct(ENCRYPTION_ALGORITHM)),
    field(9, Ty::Binary),
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
    /// What is read, for messages: "the page header" or "the footer".
    what: &'static str,
    /// What bounds it: "its column chunk" or "the footer".
    bound: &'static str,
}

type Result<T> = std::result::Result<T, String>;

impl<R: Read> Input<R> {
    fn byte(&mut self) -> Result<u8> {
        if self.left == 0 {
            return Err(format!("{} runs past the end of {}", self.what, self.bound));
        }
        let mut byte = [0u8; 1];
        self.inner.read_exact(&mut byte).map_err(|e| format!("{} cannot be read: {e}", self.what))?;
        self.left -= 1;
        self.taken += 1;
        Ok(byte[0])
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        if n > self.left {
            return Err(format!("a {n}-byte value runs past the end of {} ({} bytes left)", self.bound, self.left));
        }
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| format!("{} cannot be read: {e}", self.what))?;
        if copied != n {
            return Err(format!("{} runs past the end of the file", self.what));
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
        Err(format!("a varint in {} is longer than 64 bits", self.what))
    }

    fn zigzag(&mut self) -> Result<i64> {
        let raw = self.varint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32> {
        let value = self.zigzag()?;
        i32::try_from(value).map_err(|_| format!("an i32 of {} ({value}) is out of range", self.what))
    }

    /// A count that must fit in an i32 (as parquet-rs requires) and, since every element
    /// takes at least a byte, in what is left of the chunk.
    fn count(&mut self, raw: u64, what: &str) -> Result<u64> {
        if i32::try_from(raw).is_err() || raw > self.left {
            return Err(format!(
                "a {what} in {} claims {raw} elements with {} bytes left in {}",
                self.what, self.left, self.bound
            ));
        }
        Ok(raw)
    }

    /// A struct of `schema`, or of an unknown schema (`None`: every field skipped).
    fn read_struct(&mut self, schema: Option<&'static [Field]>, depth: u32, header: &mut PageHeader) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(format!("{} nests deeper than {MAX_DEPTH}", self.what));
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
                return Err(format!("{} has a field of unknown wire type {wire}", self.what));
            }
            let delta = i16::from(head >> 4);
            let id = if delta != 0 {
                last_id.checked_add(delta).ok_or_else(|| format!("a field id in {} overflows", self.what))?
            } else {
                let id = self.zigzag()?;
                i16::try_from(id).map_err(|_| format!("a field id of {} ({id}) is out of range", self.what))?
            };
            last_id = id;
            match schema.and_then(|fields| fields.iter().find(|f| f.id == id)) {
                Some(known) => self.read_known(known, wire, depth, header)?,
                None => self.skip_value(wire, depth + 1)?,
            }
        }
    }

    fn read_known(&mut self, known: &Field, wire: u8, depth: u32, header: &mut PageHeader) -> Result<()> {
        let expected = known.ty.wire();
        let matches = wire == expected
            || (expected == BOOLEAN_TRUE && wire == BOOLEAN_FALSE)
            // A set is written as a list is; parquet-rs reads either as the schema's list.
            || (expected == LIST && wire == SET);
        if !matches {
            return Err(format!(
                "field {} of {} is written as {}, the Parquet format says {}",
                known.id,
                self.what,
                wire_name(wire),
                wire_name(expected)
            ));
        }
        if let (Ty::I32, role) = (known.ty, known.role) {
            if role != Role::None {
                let value = self.i32()?;
                match role {
                    Role::PageType => header.page_type = Some(value),
                    Role::Uncompressed => header.uncompressed_page_size = Some(value),
                    Role::Compressed => header.compressed_page_size = Some(value),
                    Role::NumValues => header.num_values = Some(value),
                    Role::None => {}
                }
                return Ok(());
            }
        }
        self.read_value(known.ty, depth, header)
    }

    /// A value of schema type `ty` whose wire type has been checked (a struct field's bool
    /// has no bytes: its value is the wire type).
    fn read_value(&mut self, ty: Ty, depth: u32, header: &mut PageHeader) -> Result<()> {
        match ty {
            Ty::Bool => Ok(()),
            Ty::Byte => self.byte().map(drop),
            Ty::I32 => self.i32().map(drop),
            Ty::I16 | Ty::I64 => self.varint().map(drop),
            Ty::Double => self.skip(8),
            Ty::Binary => {
                let len = self.varint()?;
                self.skip(len)
            }
            Ty::Struct(fields) => self.read_struct(Some(fields), depth + 1, header),
            Ty::List(element) => {
                if depth + 1 > MAX_DEPTH {
                    return Err(format!("{} nests deeper than {MAX_DEPTH}", self.what));
                }
                let head = self.byte()?;
                let short = u64::from(head >> 4);
                let raw = if short != 15 { short } else { self.varint()? };
                if raw == 0 {
                    return Ok(());
                }
                let wire = head & 0x0f;
                let expected = element.wire();
                // No list of the footer's schema holds booleans (elements of one byte each,
                // which parquet-rs's skipping would not read).
                if wire != expected || expected == BOOLEAN_TRUE {
                    return Err(format!(
                        "a list in {} is written with {} elements, the Parquet format says {}",
                        self.what,
                        wire_name(wire),
                        wire_name(expected)
                    ));
                }
                let count = self.count(raw, "list")?;
                for _ in 0..count {
                    self.read_value(*element, depth + 1, header)?;
                }
                Ok(())
            }
        }
    }

    /// Skips a value of an unknown field by its wire type, as parquet-rs does, refusing what
    /// parquet-rs would skip differently from the bytes (containers of booleans).
    fn skip_value(&mut self, wire: u8, depth: u32) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(format!("{} nests deeper than {MAX_DEPTH}", self.what));
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
                element_types(self.what, &[element], raw)?;
                let count = self.count(raw, wire_name(wire))?;
                self.skip_elements(&[element], count, depth)
            }
            MAP => {
                let raw = self.varint()?;
                if raw == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                element_types(self.what, &[kinds >> 4, kinds & 0x0f], raw)?;
                let count = self.count(raw, "map")?;
                self.skip_elements(&[kinds >> 4, kinds & 0x0f], count, depth)
            }
            other => Err(format!("{} has a field of unknown wire type {other}", self.what)),
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
fn element_types(what: &str, types: &[u8], count: u64) -> Result<()> {
    for &element in types {
        if element == BOOLEAN_TRUE || element == BOOLEAN_FALSE {
            if count > 0 {
                return Err(format!("{what} holds a container of booleans in an unknown field (parquet-rs 60 would skip it without reading it)"));
            }
        } else if element == 0 || element > UUID {
            return Err(format!("{what} has a container of unknown element type {element}"));
        }
    }
    Ok(())
}

/// Reads one page header from `read`, which holds at most `left` bytes of its column chunk.
pub fn read_header(read: impl Read, left: u64) -> Result<PageHeader> {
    let mut input = Input { inner: read, left, taken: 0, what: "the page header", bound: "its column chunk" };
    let mut header = PageHeader::default();
    input.read_struct(Some(PAGE_HEADER), 0, &mut header)?;
    header.len = input.taken;
    Ok(header)
}

/// Reads a Parquet file's footer (`FileMetaData`) with its Thrift schema before parquet-rs
/// does, refusing what parquet-rs would read differently from the bytes or skip without reading
/// them (the module documentation's rules, over the whole `FileMetaData` schema): a footer it
/// accepts is one parquet-rs parses over exactly those bytes, so parsing it costs time
/// proportional to its length. A file too short for a footer, or whose footer length does not
/// fit, is left to parquet-rs, which refuses it.
pub fn check_footer<R: ChunkReader>(file: &R) -> std::result::Result<(), String> {
    let len = file.len();
    if len < 12 {
        return Ok(());
    }
    let tail = file.get_bytes(len - 8, 8).map_err(|e| format!("the footer cannot be read: {e}"))?;
    if &tail[4..] != b"PAR1" {
        return Ok(());
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len > len - 12 {
        return Ok(());
    }
    let footer_len_usize = usize::try_from(footer_len).map_err(|_| "the footer does not fit in memory".to_owned())?;
    let footer = file
        .get_bytes(len - 8 - footer_len, footer_len_usize)
        .map_err(|e| format!("the footer cannot be read: {e}"))?;
    let mut input =
        Input { inner: footer.as_ref(), left: footer_len, taken: 0, what: "the footer", bound: "the footer" };
    input.read_struct(Some(FILE_META_DATA), 0, &mut PageHeader::default())
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

    /// `PAR1`, `footer`, its length, `PAR1`: the smallest file `check_footer` reads.
    fn with_footer(footer: &[u8]) -> bytes::Bytes {
        let mut file = b"PAR1".to_vec();
        file.extend_from_slice(footer);
        file.extend_from_slice(&u32::try_from(footer.len()).unwrap().to_le_bytes());
        file.extend_from_slice(b"PAR1");
        file.into()
    }

    #[test]
    fn a_footer_holding_a_list_of_booleans_in_an_unknown_field_is_refused() {
        // FileMetaData { 1: version = 1, 100: list<bool> of 2^31 - 1 elements }: parquet-rs 60
        // would skip the list in 2^31 - 1 iterations without reading a byte of it.
        let mut footer = vec![head(1, I32), 2];
        footer.extend_from_slice(&[LIST, 0xc8, 0x01]); // field 100 (long form: zigzag 200)
        footer.extend_from_slice(&[0xf0 | BOOLEAN_TRUE, 0xff, 0xff, 0xff, 0xff, 0x07]);
        footer.push(0);
        let err = check_footer(&with_footer(&footer)).unwrap_err();
        assert!(err.contains("the footer holds a container of booleans"), "{err}");
        // The same footer without the list is accepted (its required fields are parquet-rs's
        // business), and a known list written with other elements is refused.
        assert_eq!(check_footer(&with_footer(&[head(1, I32), 2, 0])), Ok(()));
        let schema_of_i32s = [head(1, I32), 2, head(1, LIST), 0x15, 2, 0];
        let err = check_footer(&with_footer(&schema_of_i32s)).unwrap_err();
        assert!(err.contains("written with i32 elements, the Parquet format says struct"), "{err}");
    }

    #[test]
    fn an_over_long_varint_is_refused() {
        let mut bytes = vec![head(1, I32)];
        bytes.extend([0x80; 11]);
        let err = read_header(&bytes[..], 100).unwrap_err();
        assert!(err.contains("longer than 64 bits"), "{err}");
    }
}
