impl ::xenmq::xenbus::config::Config for Ring {
    fn keys(__out: &mut ::xenmq::__private::Vec<::xenmq::__private::String>) {
        <::xenmq::xenbus::RingRefs as ::xenmq::xenbus::config::Setting>::keys(
            "ring-ref",
            __out,
        );
        <u32 as ::xenmq::xenbus::config::Setting>::keys("event-channel", __out);
        <bool as ::xenmq::xenbus::config::Setting>::keys("feature-persistent", __out);
        <u16 as ::xenmq::xenbus::config::Setting>::keys("max-segments", __out);
        <String as ::xenmq::xenbus::config::Setting>::keys("type", __out);
        <Option<
            String,
        > as ::xenmq::xenbus::config::Setting>::keys("backend-name", __out);
    }
    fn read(
        __dir: &::core::primitive::str,
        __get: &mut dyn ::core::ops::FnMut(
            &::core::primitive::str,
        ) -> ::core::option::Option<::xenmq::__private::String>,
    ) -> ::core::result::Result<Self, ::xenmq::xenbus::config::Error> {
        let __f0: ::xenmq::xenbus::RingRefs = <::xenmq::xenbus::RingRefs as ::xenmq::xenbus::config::Setting>::read_required(
            __dir,
            "ring-ref",
            __get,
        )?;
        let __f1: u32 = <u32 as ::xenmq::xenbus::config::Setting>::read_required(
            __dir,
            "event-channel",
            __get,
        )?;
        let __f2: bool = <bool as ::xenmq::xenbus::config::Setting>::read_required(
            __dir,
            "feature-persistent",
            __get,
        )?;
        let __f3: u16 = match <u16 as ::xenmq::xenbus::config::Setting>::read(
            __dir,
            "max-segments",
            __get,
        )? {
            ::core::option::Option::Some(__v) => __v,
            ::core::option::Option::None => 11,
        };
        <u16 as ::xenmq::xenbus::config::Bounded>::check_range(
            &__f3,
            __dir,
            "max-segments",
            ::core::option::Option::Some(1),
            ::core::option::Option::Some(256),
        )?;
        let __f4: String = match <String as ::xenmq::xenbus::config::Setting>::read(
            __dir,
            "type",
            __get,
        )? {
            ::core::option::Option::Some(__v) => __v,
            ::core::option::Option::None => {
                <::xenmq::__private::String as ::core::convert::From<
                    &::core::primitive::str,
                >>::from("vkv")
            }
        };
        let __f5: Option<String> = <Option<
            String,
        > as ::xenmq::xenbus::config::Setting>::read_required(
            __dir,
            "backend-name",
            __get,
        )?;
        ::core::result::Result::Ok(Ring {
            ring: __f0,
            event_channel: __f1,
            feature_persistent: __f2,
            max_segments: __f3,
            r#type: __f4,
            backend_name: __f5,
        })
    }
    fn write(
        &self,
        __put: &mut dyn ::core::ops::FnMut(
            &::core::primitive::str,
            ::xenmq::__private::String,
        ),
    ) {
        <::xenmq::xenbus::RingRefs as ::xenmq::xenbus::config::Setting>::write(
            &self.ring,
            "ring-ref",
            __put,
        );
        <u32 as ::xenmq::xenbus::config::Setting>::write(
            &self.event_channel,
            "event-channel",
            __put,
        );
        <bool as ::xenmq::xenbus::config::Setting>::write(
            &self.feature_persistent,
            "feature-persistent",
            __put,
        );
        <u16 as ::xenmq::xenbus::config::Setting>::write(
            &self.max_segments,
            "max-segments",
            __put,
        );
        <String as ::xenmq::xenbus::config::Setting>::write(&self.r#type, "type", __put);
        <Option<
            String,
        > as ::xenmq::xenbus::config::Setting>::write(
            &self.backend_name,
            "backend-name",
            __put,
        );
    }
}
