//! `crate = "..."` points the generated code at a renamed netz.
extern crate netz as my_netz;

mod inner {
    use ::netz as renamed;

    #[renamed::dataset(crate = "renamed")]
    #[derive(Default)]
    pub struct Data {
        pub value: i32,
    }

    #[renamed::doclass(crate = "renamed")]
    #[derive(Default)]
    pub struct Thing {
        #[dataset]
        pub data: Data,
    }

    #[renamed::doclass(crate = "renamed")]
    impl Thing {
        #[rmc]
        pub fn get(&self) -> i32 {
            self.data.value
        }
    }
}

#[my_netz::dataset(crate = "::my_netz")]
#[derive(Default)]
pub struct Other {
    pub value: i32,
}

#[my_netz::doclass(crate = "::my_netz")]
#[derive(Default)]
pub struct OtherThing {
    #[dataset]
    pub data: Other,
}

#[my_netz::doclass(crate = "::my_netz")]
impl OtherThing {
    #[action]
    pub fn poke(&mut self) {}
}

fn main() {
    let mut r = my_netz::Registry::new();
    r.register::<inner::Thing>().unwrap();
    r.register::<OtherThing>().unwrap();
    let _: inner::ThingProxy<'static>;
}
