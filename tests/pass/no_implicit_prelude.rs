//! Generated code uses absolute paths only.
#![no_implicit_prelude]

#[::netz::dataset]
#[derive(::std::default::Default)]
pub struct Data {
    pub value: i32,
    #[revision(1)]
    pub name: ::std::string::String,
}

#[::netz::dataset(revision = 1, latest)]
#[derive(::std::default::Default)]
pub struct Place {
    #[quantize(min = -512.0, max = 512.0, bits = 16)]
    pub x: f32,
    #[quantize(min = 0, max = 1, bits = 1)]
    pub on: f64,
}

#[::netz::doclass(classid = 150)]
#[derive(::std::default::Default)]
pub struct Thing {
    #[dataset]
    pub data: Data,
    #[dataset]
    pub place: Place,
}

#[::netz::doclass]
impl Thing {
    #[rmc]
    pub fn get(&self, call: &mut ::netz::CallContext<'_>, add: &str, #[out] len: &mut usize) -> i32 {
        let _ = call;
        *len = add.len();
        self.data.value
    }
    #[action]
    pub fn set(&mut self, v: i32) {
        self.data.value = v;
    }
}

fn main() {
    let mut r = ::netz::Registry::new();
    ::std::assert!(r.register::<Thing>().is_ok());
}
