//! `google.protobuf.Struct` ⇄ JSON. The Struct form's numbers are doubles: a
//! client that needs exact numbers uses `argumentsJson`.

use prost_types::{value::Kind as PKind, ListValue, Struct, Value};
use serde_json::{Map, Number, Value as J};

/// A Struct as JSON, moving its strings.
pub fn struct_into_json(s: Struct) -> Map<String, J> {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, value_into_json(v)))
        .collect()
}

fn value_into_json(v: Value) -> J {
    match v.kind {
        Some(PKind::StringValue(s)) => J::String(s),
        Some(PKind::ListValue(l)) => J::Array(l.values.into_iter().map(value_into_json).collect()),
        Some(PKind::StructValue(s)) => J::Object(struct_into_json(s)),
        other => value_to_json(&Value { kind: other }),
    }
}

pub fn struct_to_json(s: &Struct) -> Map<String, J> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

fn value_to_json(v: &Value) -> J {
    match &v.kind {
        None | Some(PKind::NullValue(_)) => J::Null,
        Some(PKind::BoolValue(b)) => J::Bool(*b),
        Some(PKind::NumberValue(n)) => {
            // Whole numbers stay integers, as the model and the client wrote them.
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                J::Number(Number::from(*n as i64))
            } else {
                Number::from_f64(*n).map(J::Number).unwrap_or(J::Null)
            }
        }
        Some(PKind::StringValue(s)) => J::String(s.clone()),
        Some(PKind::ListValue(l)) => J::Array(l.values.iter().map(value_to_json).collect()),
        Some(PKind::StructValue(s)) => J::Object(struct_to_json(s)),
    }
}

pub fn json_to_struct(m: &Map<String, J>) -> Struct {
    Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(v: &J) -> Value {
    let kind = match v {
        J::Null => PKind::NullValue(0),
        J::Bool(b) => PKind::BoolValue(*b),
        J::Number(n) => PKind::NumberValue(n.as_f64().unwrap_or(0.0)),
        J::String(s) => PKind::StringValue(s.clone()),
        J::Array(a) => PKind::ListValue(ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        J::Object(o) => PKind::StructValue(json_to_struct(o)),
    };
    Value { kind: Some(kind) }
}
