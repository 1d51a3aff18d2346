//! The fuzz inputs as text: a reader for the `{:#?}` output of the input types, so that a case
//! found by the fuzzer (printed by `cargo fuzz fmt`) can be committed as a readable file and
//! replayed by plain `cargo test` in the main crate, which has no `arbitrary` dependency.
//!
//! This file is shared: the `dropmax-fuzz` library declares it as `crate::value`, and
//! `tests/fuzz_regressions.rs` includes it with `#[path]` under the same name. The input types are
//! declared with [`fuzz_struct!`] and [`fuzz_enum!`], which derive `Debug` and `PartialEq`, derive
//! `arbitrary::Arbitrary` only outside `cfg(test)` (the fuzz crate never builds with `cfg(test)`;
//! the main crate's integration tests always do), and implement [`FromValue`], the way back from
//! the `Debug` text.

use core::fmt;

/// A parsed `Debug` value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A bare token: a number, `true`, `None`, a unit variant, `NaN`, `-inf`, `0x7fc00000`.
    Atom(String),
    /// `[a, b, ...]`.
    List(Vec<Value>),
    /// `Name(a, b, ...)`, or a plain tuple `(a, b, ...)` with an empty name.
    Tuple(String, Vec<Value>),
    /// `Name { field: value, ... }`.
    Struct(String, Vec<(String, Value)>),
}

/// Parses one `Debug` value (compact or pretty, trailing commas allowed); nothing may follow it.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing text at byte {}", p.i));
    }
    Ok(v)
}

struct Parser<'s> {
    s: &'s [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn token(&mut self) -> Result<String, String> {
        self.ws();
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || b"_.+-".contains(&c))
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(format!("expected a token at byte {}", self.i));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// Comma-separated items up to `close`, a trailing comma allowed.
    fn items<T>(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let mut out = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(out);
            }
            out.push(item(self)?);
            if self.peek() == Some(b',') {
                self.i += 1;
            } else {
                self.expect(close)?;
                return Ok(out);
            }
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'[') => {
                self.i += 1;
                Ok(Value::List(self.items(b']', Self::value)?))
            }
            Some(b'(') => {
                self.i += 1;
                Ok(Value::Tuple(String::new(), self.items(b')', Self::value)?))
            }
            _ => {
                let name = self.token()?;
                match self.peek() {
                    Some(b'(') => {
                        self.i += 1;
                        Ok(Value::Tuple(name, self.items(b')', Self::value)?))
                    }
                    Some(b'{') => {
                        self.i += 1;
                        let fields = self.items(b'}', |p| {
                            let f = p.token()?;
                            p.expect(b':')?;
                            Ok((f, p.value()?))
                        })?;
                        Ok(Value::Struct(name, fields))
                    }
                    _ => Ok(Value::Atom(name)),
                }
            }
        }
    }
}

/// Rebuilds a value from its parsed `Debug` text.
pub trait FromValue: Sized {
    /// The value `v` describes.
    fn from_value(v: &Value) -> Result<Self, String>;
    /// The value of a struct field left out of the text, if it may be: `None` for `Option`
    /// fields (so that cases written before a field was added still read), none otherwise.
    fn missing() -> Option<Self> {
        None
    }
}

/// Parses `text` as a `T`.
pub fn from_text<T: FromValue>(text: &str) -> Result<T, String> {
    T::from_value(&parse(text)?)
}

/// The fields of struct `name`.
pub fn fields<'v>(v: &'v Value, name: &str) -> Result<&'v [(String, Value)], String> {
    match v {
        Value::Struct(n, f) if n == name => Ok(f),
        _ => Err(format!("expected struct {name}, found {v:?}")),
    }
}

/// Field `name` of a struct's fields, converted.
pub fn field<T: FromValue>(fields: &[(String, Value)], name: &str) -> Result<T, String> {
    match fields.iter().find(|(f, _)| f == name) {
        Some((_, v)) => T::from_value(v).map_err(|e| format!("{name}: {e}")),
        None => T::missing().ok_or_else(|| format!("missing field {name}")),
    }
}

fn atom(v: &Value) -> Result<&str, String> {
    match v {
        Value::Atom(a) => Ok(a),
        _ => Err(format!("expected a token, found {v:?}")),
    }
}

macro_rules! from_value_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<Self, String> {
                let a = atom(v)?;
                let r = match a.strip_prefix("0x") {
                    Some(hex) => <$t>::from_str_radix(hex, 16),
                    None => a.parse::<$t>(),
                };
                r.map_err(|e| format!("{a}: {e}"))
            }
        }
    )*};
}
from_value_int!(u8, u16, u32, u64, i8, i16, i32, i64);

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, String> {
        match atom(v)? {
            "true" => Ok(true),
            "false" => Ok(false),
            a => Err(format!("expected a bool, found {a}")),
        }
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::List(items) => items.iter().map(T::from_value).collect(),
            _ => Err(format!("expected a list, found {v:?}")),
        }
    }
}

impl<T: FromValue, const N: usize> FromValue for [T; N] {
    fn from_value(v: &Value) -> Result<Self, String> {
        let items: Vec<T> = Vec::from_value(v)?;
        let found = items.len();
        items
            .try_into()
            .map_err(|_| format!("expected {N} items, found {found}"))
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Atom(a) if a == "None" => Ok(None),
            Value::Tuple(n, items) if n == "Some" && items.len() == 1 => {
                Ok(Some(T::from_value(&items[0])?))
            }
            _ => Err(format!("expected an Option, found {v:?}")),
        }
    }

    fn missing() -> Option<Self> {
        Some(None)
    }
}

impl<A: FromValue, B: FromValue> FromValue for (A, B) {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Tuple(n, items) if n.is_empty() && items.len() == 2 => {
                Ok((A::from_value(&items[0])?, B::from_value(&items[1])?))
            }
            _ => Err(format!("expected a pair, found {v:?}")),
        }
    }
}

/// An `f32` given by its bits, so that every NaN payload can be expressed; `Debug` shows both,
/// e.g. `F32Bits(0x7fc00001, NaN)`.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), derive(arbitrary::Arbitrary))]
pub struct F32Bits(pub u32);

impl F32Bits {
    /// The value.
    pub fn get(self) -> f32 {
        f32::from_bits(self.0)
    }
}

impl fmt::Debug for F32Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "F32Bits({:#010x}, {:?})", self.0, self.get())
    }
}

impl FromValue for F32Bits {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Tuple(n, items) if n == "F32Bits" && !items.is_empty() => {
                Ok(Self(u32::from_value(&items[0])?))
            }
            _ => Err(format!("expected F32Bits, found {v:?}")),
        }
    }
}

/// An `f64` given by its bits; `Debug` shows both, e.g. `F64Bits(0x3fe0000000000000, 0.5)`.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), derive(arbitrary::Arbitrary))]
pub struct F64Bits(pub u64);

impl F64Bits {
    /// The value.
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl fmt::Debug for F64Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "F64Bits({:#018x}, {:?})", self.0, self.get())
    }
}

impl FromValue for F64Bits {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Tuple(n, items) if n == "F64Bits" && !items.is_empty() => {
                Ok(Self(u64::from_value(&items[0])?))
            }
            _ => Err(format!("expected F64Bits, found {v:?}")),
        }
    }
}

/// Declares an input struct (named fields, each `pub`, each followed by a comma) with `Debug`,
/// `PartialEq`, `Arbitrary` (outside `cfg(test)`) and [`FromValue`].
macro_rules! fuzz_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq)]
        #[cfg_attr(not(test), derive(arbitrary::Arbitrary))]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $crate::value::FromValue for $name {
            fn from_value(v: &$crate::value::Value) -> Result<Self, String> {
                let _fields = $crate::value::fields(v, stringify!($name))?;
                Ok(Self {
                    $($f: $crate::value::field(_fields, stringify!($f))?,)*
                })
            }
        }
    };
}

/// Declares an input enum (unit variants and one-field tuple variants, each followed by a comma)
/// with `Debug`, `PartialEq`, `Arbitrary` (outside `cfg(test)`) and [`FromValue`].
macro_rules! fuzz_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident $(($t:ty))?,)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq)]
        #[cfg_attr(not(test), derive(arbitrary::Arbitrary))]
        pub enum $name {
            $($(#[$vm])* $var $(($t))?,)*
        }

        impl $crate::value::FromValue for $name {
            fn from_value(v: &$crate::value::Value) -> Result<Self, String> {
                $(fuzz_enum!(@variant v, $name, $var $(($t))?);)*
                Err(format!("expected {}, found {v:?}", stringify!($name)))
            }
        }
    };
    (@variant $v:ident, $name:ident, $var:ident) => {
        if let $crate::value::Value::Atom(a) = $v
            && a == stringify!($var)
        {
            return Ok($name::$var);
        }
    };
    (@variant $v:ident, $name:ident, $var:ident ($t:ty)) => {
        if let $crate::value::Value::Tuple(n, items) = $v
            && n == stringify!($var)
            && items.len() == 1
        {
            return Ok($name::$var($crate::value::FromValue::from_value(&items[0])?));
        }
    };
}
