/* item data of one JD product, as the item page's script declares it */
var pageConfig = {
    compatible: true,
    product: {
        skuid: 100012043978,
        name: '\u5c0f\u7c73 Redmi K70 16GB+512GB \u58a8\u7fbd',
        src: 'jfs/t1/180000/5/1234/56789/65a0b1c2Fd3e4f5a6/0a1b2c3d4e5f6a7b.jpg',
        imageList: ["jfs/t1/180000/5/1234/56789/65a0b1c2Fd3e4f5a6/0a1b2c3d4e5f6a7b.jpg","jfs/t1/179999/6/2345/67890/65a0b1c3Fe4f5a6b7/1b2c3d4e5f6a7b8c.jpg",],
        cat: [9987,653,655],
        brand: 18374,
        venderId:1000004123,
        shopId:'1000004123',
        isPop:false,
    }
};
