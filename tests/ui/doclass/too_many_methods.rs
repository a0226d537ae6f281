use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[rmc]
    fn m0(&self) {}
    #[rmc]
    fn m1(&self) {}
    #[rmc]
    fn m2(&self) {}
    #[rmc]
    fn m3(&self) {}
    #[rmc]
    fn m4(&self) {}
    #[rmc]
    fn m5(&self) {}
    #[rmc]
    fn m6(&self) {}
    #[rmc]
    fn m7(&self) {}
    #[rmc]
    fn m8(&self) {}
    #[rmc]
    fn m9(&self) {}
    #[rmc]
    fn m10(&self) {}
    #[rmc]
    fn m11(&self) {}
    #[rmc]
    fn m12(&self) {}
    #[rmc]
    fn m13(&self) {}
    #[rmc]
    fn m14(&self) {}
    #[rmc]
    fn m15(&self) {}
    #[rmc]
    fn m16(&self) {}
    #[rmc]
    fn m17(&self) {}
    #[rmc]
    fn m18(&self) {}
    #[rmc]
    fn m19(&self) {}
    #[rmc]
    fn m20(&self) {}
    #[rmc]
    fn m21(&self) {}
    #[rmc]
    fn m22(&self) {}
    #[rmc]
    fn m23(&self) {}
    #[rmc]
    fn m24(&self) {}
    #[rmc]
    fn m25(&self) {}
    #[rmc]
    fn m26(&self) {}
    #[rmc]
    fn m27(&self) {}
    #[rmc]
    fn m28(&self) {}
    #[rmc]
    fn m29(&self) {}
    #[rmc]
    fn m30(&self) {}
    #[rmc]
    fn m31(&self) {}
    #[rmc]
    fn m32(&self) {}
    #[rmc]
    fn m33(&self) {}
    #[rmc]
    fn m34(&self) {}
    #[rmc]
    fn m35(&self) {}
    #[rmc]
    fn m36(&self) {}
    #[rmc]
    fn m37(&self) {}
    #[rmc]
    fn m38(&self) {}
    #[rmc]
    fn m39(&self) {}
    #[rmc]
    fn m40(&self) {}
    #[rmc]
    fn m41(&self) {}
    #[rmc]
    fn m42(&self) {}
    #[rmc]
    fn m43(&self) {}
    #[rmc]
    fn m44(&self) {}
    #[rmc]
    fn m45(&self) {}
    #[rmc]
    fn m46(&self) {}
    #[rmc]
    fn m47(&self) {}
    #[rmc]
    fn m48(&self) {}
    #[rmc]
    fn m49(&self) {}
    #[rmc]
    fn m50(&self) {}
    #[rmc]
    fn m51(&self) {}
    #[rmc]
    fn m52(&self) {}
    #[rmc]
    fn m53(&self) {}
    #[rmc]
    fn m54(&self) {}
    #[rmc]
    fn m55(&self) {}
    #[rmc]
    fn m56(&self) {}
    #[rmc]
    fn m57(&self) {}
    #[rmc]
    fn m58(&self) {}
    #[rmc]
    fn m59(&self) {}
    #[rmc]
    fn m60(&self) {}
    #[rmc]
    fn m61(&self) {}
    #[rmc]
    fn m62(&self) {}
    #[rmc]
    fn m63(&self) {}
    #[rmc]
    fn m64(&self) {}
    #[rmc]
    fn m65(&self) {}
    #[rmc]
    fn m66(&self) {}
    #[rmc]
    fn m67(&self) {}
    #[rmc]
    fn m68(&self) {}
    #[rmc]
    fn m69(&self) {}
    #[rmc]
    fn m70(&self) {}
    #[rmc]
    fn m71(&self) {}
    #[rmc]
    fn m72(&self) {}
    #[rmc]
    fn m73(&self) {}
    #[rmc]
    fn m74(&self) {}
    #[rmc]
    fn m75(&self) {}
    #[rmc]
    fn m76(&self) {}
    #[rmc]
    fn m77(&self) {}
    #[rmc]
    fn m78(&self) {}
    #[rmc]
    fn m79(&self) {}
    #[rmc]
    fn m80(&self) {}
    #[rmc]
    fn m81(&self) {}
    #[rmc]
    fn m82(&self) {}
    #[rmc]
    fn m83(&self) {}
    #[rmc]
    fn m84(&self) {}
    #[rmc]
    fn m85(&self) {}
    #[rmc]
    fn m86(&self) {}
    #[rmc]
    fn m87(&self) {}
    #[rmc]
    fn m88(&self) {}
    #[rmc]
    fn m89(&self) {}
    #[rmc]
    fn m90(&self) {}
    #[rmc]
    fn m91(&self) {}
    #[rmc]
    fn m92(&self) {}
    #[rmc]
    fn m93(&self) {}
    #[rmc]
    fn m94(&self) {}
    #[rmc]
    fn m95(&self) {}
    #[rmc]
    fn m96(&self) {}
    #[rmc]
    fn m97(&self) {}
    #[rmc]
    fn m98(&self) {}
    #[rmc]
    fn m99(&self) {}
    #[rmc]
    fn m100(&self) {}
    #[rmc]
    fn m101(&self) {}
    #[rmc]
    fn m102(&self) {}
    #[rmc]
    fn m103(&self) {}
    #[rmc]
    fn m104(&self) {}
    #[rmc]
    fn m105(&self) {}
    #[rmc]
    fn m106(&self) {}
    #[rmc]
    fn m107(&self) {}
    #[rmc]
    fn m108(&self) {}
    #[rmc]
    fn m109(&self) {}
    #[rmc]
    fn m110(&self) {}
    #[rmc]
    fn m111(&self) {}
    #[rmc]
    fn m112(&self) {}
    #[rmc]
    fn m113(&self) {}
    #[rmc]
    fn m114(&self) {}
    #[rmc]
    fn m115(&self) {}
    #[rmc]
    fn m116(&self) {}
    #[rmc]
    fn m117(&self) {}
    #[rmc]
    fn m118(&self) {}
    #[rmc]
    fn m119(&self) {}
    #[rmc]
    fn m120(&self) {}
    #[rmc]
    fn m121(&self) {}
    #[rmc]
    fn m122(&self) {}
    #[rmc]
    fn m123(&self) {}
    #[rmc]
    fn m124(&self) {}
    #[rmc]
    fn m125(&self) {}
    #[rmc]
    fn m126(&self) {}
    #[rmc]
    fn m127(&self) {}
    #[rmc]
    fn m128(&self) {}
    #[rmc]
    fn m129(&self) {}
    #[rmc]
    fn m130(&self) {}
    #[rmc]
    fn m131(&self) {}
    #[rmc]
    fn m132(&self) {}
    #[rmc]
    fn m133(&self) {}
    #[rmc]
    fn m134(&self) {}
    #[rmc]
    fn m135(&self) {}
    #[rmc]
    fn m136(&self) {}
    #[rmc]
    fn m137(&self) {}
    #[rmc]
    fn m138(&self) {}
    #[rmc]
    fn m139(&self) {}
    #[rmc]
    fn m140(&self) {}
    #[rmc]
    fn m141(&self) {}
    #[rmc]
    fn m142(&self) {}
    #[rmc]
    fn m143(&self) {}
    #[rmc]
    fn m144(&self) {}
    #[rmc]
    fn m145(&self) {}
    #[rmc]
    fn m146(&self) {}
    #[rmc]
    fn m147(&self) {}
    #[rmc]
    fn m148(&self) {}
    #[rmc]
    fn m149(&self) {}
    #[rmc]
    fn m150(&self) {}
    #[rmc]
    fn m151(&self) {}
    #[rmc]
    fn m152(&self) {}
    #[rmc]
    fn m153(&self) {}
    #[rmc]
    fn m154(&self) {}
    #[rmc]
    fn m155(&self) {}
    #[rmc]
    fn m156(&self) {}
    #[rmc]
    fn m157(&self) {}
    #[rmc]
    fn m158(&self) {}
    #[rmc]
    fn m159(&self) {}
    #[rmc]
    fn m160(&self) {}
    #[rmc]
    fn m161(&self) {}
    #[rmc]
    fn m162(&self) {}
    #[rmc]
    fn m163(&self) {}
    #[rmc]
    fn m164(&self) {}
    #[rmc]
    fn m165(&self) {}
    #[rmc]
    fn m166(&self) {}
    #[rmc]
    fn m167(&self) {}
    #[rmc]
    fn m168(&self) {}
    #[rmc]
    fn m169(&self) {}
    #[rmc]
    fn m170(&self) {}
    #[rmc]
    fn m171(&self) {}
    #[rmc]
    fn m172(&self) {}
    #[rmc]
    fn m173(&self) {}
    #[rmc]
    fn m174(&self) {}
    #[rmc]
    fn m175(&self) {}
    #[rmc]
    fn m176(&self) {}
    #[rmc]
    fn m177(&self) {}
    #[rmc]
    fn m178(&self) {}
    #[rmc]
    fn m179(&self) {}
    #[rmc]
    fn m180(&self) {}
    #[rmc]
    fn m181(&self) {}
    #[rmc]
    fn m182(&self) {}
    #[rmc]
    fn m183(&self) {}
    #[rmc]
    fn m184(&self) {}
    #[rmc]
    fn m185(&self) {}
    #[rmc]
    fn m186(&self) {}
    #[rmc]
    fn m187(&self) {}
    #[rmc]
    fn m188(&self) {}
    #[rmc]
    fn m189(&self) {}
    #[rmc]
    fn m190(&self) {}
    #[rmc]
    fn m191(&self) {}
    #[rmc]
    fn m192(&self) {}
    #[rmc]
    fn m193(&self) {}
    #[rmc]
    fn m194(&self) {}
    #[rmc]
    fn m195(&self) {}
    #[rmc]
    fn m196(&self) {}
    #[rmc]
    fn m197(&self) {}
    #[rmc]
    fn m198(&self) {}
    #[rmc]
    fn m199(&self) {}
    #[rmc]
    fn m200(&self) {}
    #[rmc]
    fn m201(&self) {}
    #[rmc]
    fn m202(&self) {}
    #[rmc]
    fn m203(&self) {}
    #[rmc]
    fn m204(&self) {}
    #[rmc]
    fn m205(&self) {}
    #[rmc]
    fn m206(&self) {}
    #[rmc]
    fn m207(&self) {}
    #[rmc]
    fn m208(&self) {}
    #[rmc]
    fn m209(&self) {}
    #[rmc]
    fn m210(&self) {}
    #[rmc]
    fn m211(&self) {}
    #[rmc]
    fn m212(&self) {}
    #[rmc]
    fn m213(&self) {}
    #[rmc]
    fn m214(&self) {}
    #[rmc]
    fn m215(&self) {}
    #[rmc]
    fn m216(&self) {}
    #[rmc]
    fn m217(&self) {}
    #[rmc]
    fn m218(&self) {}
    #[rmc]
    fn m219(&self) {}
    #[rmc]
    fn m220(&self) {}
    #[rmc]
    fn m221(&self) {}
    #[rmc]
    fn m222(&self) {}
    #[rmc]
    fn m223(&self) {}
    #[rmc]
    fn m224(&self) {}
    #[rmc]
    fn m225(&self) {}
    #[rmc]
    fn m226(&self) {}
    #[rmc]
    fn m227(&self) {}
    #[rmc]
    fn m228(&self) {}
    #[rmc]
    fn m229(&self) {}
    #[rmc]
    fn m230(&self) {}
    #[rmc]
    fn m231(&self) {}
    #[rmc]
    fn m232(&self) {}
    #[rmc]
    fn m233(&self) {}
    #[rmc]
    fn m234(&self) {}
    #[rmc]
    fn m235(&self) {}
    #[rmc]
    fn m236(&self) {}
    #[rmc]
    fn m237(&self) {}
    #[rmc]
    fn m238(&self) {}
    #[rmc]
    fn m239(&self) {}
    #[rmc]
    fn m240(&self) {}
    #[rmc]
    fn m241(&self) {}
    #[rmc]
    fn m242(&self) {}
    #[rmc]
    fn m243(&self) {}
    #[rmc]
    fn m244(&self) {}
    #[rmc]
    fn m245(&self) {}
    #[rmc]
    fn m246(&self) {}
    #[rmc]
    fn m247(&self) {}
    #[rmc]
    fn m248(&self) {}
    #[rmc]
    fn m249(&self) {}
    #[rmc]
    fn m250(&self) {}
    #[rmc]
    fn m251(&self) {}
    #[rmc]
    fn m252(&self) {}
    #[rmc]
    fn m253(&self) {}
    #[rmc]
    fn m254(&self) {}
    #[rmc]
    fn m255(&self) {}
}

fn main() {}
